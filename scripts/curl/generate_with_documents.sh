#!/usr/bin/env bash
# Answer a prompt from a model's documents; the reply lists the passages used as `sources`
# (document, page, chunk, passage) and, when some did not fit, `warnings`.
#   scripts/curl/generate_with_documents.sh MODEL "PROMPT" [DOCUMENT ...]
# Without DOCUMENT, all of the model's documents are searched. MAX_TOKENS (default 256).
set -euo pipefail
source "$(dirname "$0")/_common.sh"

if [ $# -lt 2 ]; then
  echo "usage: $0 MODEL \"PROMPT\" [DOCUMENT ...]" >&2
  exit 2
fi
model="$1" prompt="$2"
shift 2
if [ $# -eq 0 ]; then
  docs="\"all_documents\": true"
else
  docs=""
  for name in "$@"; do
    docs="${docs:+${docs}, }$(json_string "$name")"
  done
  docs="\"documents\": [${docs}]"
fi
body="{\"model\": $(json_string "$model"), \"prompt\": $(json_string "$prompt"), ${docs},
       \"stream\": false, \"options\": {\"max_tokens\": ${MAX_TOKENS:-256}}}"

api POST /generate -H 'Content-Type: application/json' -d "$body"
