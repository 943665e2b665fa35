#!/usr/bin/env bash
# OpenAI-compatible chat completion (any OpenAI client works with base_url $BASE_URL/v1).
#   scripts/curl/chat_completions.sh MODEL "MESSAGE" [--stream]
# --stream prints server-sent events ending in `data: [DONE]`. MAX_TOKENS (default 256).
set -euo pipefail
source "$(dirname "$0")/_common.sh"

if [ $# -lt 2 ]; then
  echo "usage: $0 MODEL \"MESSAGE\" [--stream]" >&2
  exit 2
fi
stream=false
if [ "${3:-}" = "--stream" ]; then
  stream=true
fi
body="{\"model\": $(json_string "$1"), \"stream\": ${stream}, \"max_tokens\": ${MAX_TOKENS:-256},
       \"messages\": [{\"role\": \"user\", \"content\": $(json_string "$2")}]}"

api POST /v1/chat/completions -H 'Content-Type: application/json' -d "$body"
