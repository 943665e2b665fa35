#!/usr/bin/env bash
# List a model's documents (name, pages, chunks, size, import time).
#   scripts/curl/list_documents.sh MODEL
set -euo pipefail
source "$(dirname "$0")/_common.sh"

if [ $# -ne 1 ]; then
  echo "usage: $0 MODEL" >&2
  exit 2
fi

api GET /listDocuments -G --data-urlencode "model=$1"
