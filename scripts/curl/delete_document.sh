#!/usr/bin/env bash
# Delete one document of a model (its file and its vectors).
#   scripts/curl/delete_document.sh MODEL DOCUMENT
set -euo pipefail
source "$(dirname "$0")/_common.sh"

if [ $# -ne 2 ]; then
  echo "usage: $0 MODEL DOCUMENT" >&2
  exit 2
fi

api DELETE /deleteDocument -G --data-urlencode "model=$1" --data-urlencode "document=$2"
