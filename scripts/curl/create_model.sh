#!/usr/bin/env bash
# Create a variant: a base model plus a system prompt.
#   scripts/curl/create_model.sh NAME "SYSTEM PROMPT" [BASE_MODEL]
# TEMPERATURE (default 0.7) sets the variant's default sampling temperature.
set -euo pipefail
source "$(dirname "$0")/_common.sh"

if [ $# -lt 2 ]; then
  echo "usage: $0 NAME \"SYSTEM PROMPT\" [BASE_MODEL]" >&2
  exit 2
fi
base=""
if [ -n "${3:-}" ]; then
  base=", \"base_model\": $(json_string "$3")"
fi
body="{\"name\": $(json_string "$1"), \"system_prompt\": $(json_string "$2")${base},
       \"parameters\": {\"temperature\": ${TEMPERATURE:-0.7}}}"

api POST /createModel -H 'Content-Type: application/json' -d "$body"
