#!/usr/bin/env bash
# Delete a variant (base models are removed from the shared volume, not through the API).
#   scripts/curl/delete_model.sh NAME
set -euo pipefail
source "$(dirname "$0")/_common.sh"

if [ $# -ne 1 ]; then
  echo "usage: $0 NAME" >&2
  exit 2
fi

api DELETE /deleteModel --get --data-urlencode "name=$1"
