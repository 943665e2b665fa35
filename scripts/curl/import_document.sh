#!/usr/bin/env bash
# Import a PDF for a model: its text is chunked and embedded; the same NAME replaces it.
#   scripts/curl/import_document.sh MODEL FILE.pdf [NAME]
# NAME defaults to the file's name; answers 201 with pages, chunks and whether it replaced one.
set -euo pipefail
source "$(dirname "$0")/_common.sh"

if [ $# -lt 2 ] || [ $# -gt 3 ]; then
  echo "usage: $0 MODEL FILE.pdf [NAME]" >&2
  exit 2
fi
if [ ! -f "$2" ]; then
  echo "$0: no such file: $2" >&2
  exit 2
fi
file="${2//\\/\\\\}"  # quoted for -F, so commas, semicolons and quotes stay part of the path
file="${file//\"/\\\"}"
form=(-F "file=@\"${file}\";type=application/pdf" --form-string "model=$1")
if [ -n "${3:-}" ]; then
  form+=(--form-string "name=$3")
fi

api POST /importDocument "${form[@]}"
