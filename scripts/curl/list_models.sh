#!/usr/bin/env bash
# List base models and variants.
#   scripts/curl/list_models.sh
set -euo pipefail
source "$(dirname "$0")/_common.sh"

api GET /listModels
