#!/usr/bin/env bash
# Answer a prompt with a model (its system prompt and default options apply).
#   scripts/curl/generate.sh MODEL "PROMPT" [--stream]
# --stream prints NDJSON lines as tokens arrive. MAX_TOKENS (default 256) caps the answer.
set -euo pipefail
source "$(dirname "$0")/_common.sh"

if [ $# -lt 2 ]; then
  echo "usage: $0 MODEL \"PROMPT\" [--stream]" >&2
  exit 2
fi
stream=false
if [ "${3:-}" = "--stream" ]; then
  stream=true
fi
body="{\"model\": $(json_string "$1"), \"prompt\": $(json_string "$2"), \"stream\": ${stream},
       \"options\": {\"max_tokens\": ${MAX_TOKENS:-256}}}"

api POST /generate -H 'Content-Type: application/json' -d "$body"
