#!/usr/bin/env bash
# Delete every document of every model through the API: the stored PDFs, their rows in
# the document catalogue and their vectors in Chroma, so the three stay consistent.
# Models themselves are kept.
#   scripts/clean_vector_db.sh [--yes]
# BASE_URL and LLM_API_KEY as for the curl examples (scripts/curl/).
set -euo pipefail
source "$(dirname "$0")/curl/_common.sh"

yes=false
for arg in "$@"; do
  case "$arg" in
    --yes|-y) yes=true ;;
    *) echo "usage: $0 [--yes]" >&2; exit 2 ;;
  esac
done

listing=$(api GET /listModels)
models=$(grep -o '"name": *"[^"]*"' <<< "$listing" | sed 's/.*"\([^"]*\)"$/\1/')
if [ -z "$models" ]; then
  echo "No models: nothing to clean."
  exit 0
fi
echo "Every document (PDF, catalogue entry, vectors) of these models will be deleted:"
sed 's/^/  /' <<< "$models"
if [ "$yes" = false ]; then
  read -r -p "Delete them? [y/N] " answer || answer=""
  case "$answer" in
    y|Y|yes|YES) ;;
    *) echo "Nothing deleted."; exit 1 ;;
  esac
fi
while read -r model; do
  api DELETE /deleteAllDocuments --get --data-urlencode "model=$model"
done <<< "$models"
