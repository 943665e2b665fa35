#!/usr/bin/env bash
# Start a fine-tuning job; answers 202 at once with the job (follow it with follow_job.sh).
#   scripts/curl/fine_tune.sh MODEL_NAME TRAIN.csv [EVAL.csv]
# BASE_MODEL (default smollm2-135m) is the model tuned. FT_ARGS passes any other field of
# the job spec, space-separated NAME=VALUE pairs, e.g. FT_ARGS="max_steps=60 export=adapter".
# SYSTEM_PROMPT (may contain spaces) sets the tuned model's system prompt; IDEMPOTENCY_KEY
# is sent as `Idempotency-Key`, so a repeat returns the same job instead of a second one.
set -euo pipefail
source "$(dirname "$0")/_common.sh"

if [ $# -lt 2 ] || [ $# -gt 3 ]; then
  echo "usage: $0 MODEL_NAME TRAIN.csv [EVAL.csv]   (env: BASE_MODEL, FT_ARGS=\"max_steps=60 ...\")" >&2
  exit 2
fi
for file in "${@:2}"; do
  if [ ! -f "$file" ]; then
    echo "$0: no such file: $file" >&2
    exit 2
  fi
done
# file_field FIELD PATH: a -F argument uploading PATH, quoted so , ; and " stay in the path
file_field() {
  local path="${2//\\/\\\\}"
  path="${path//\"/\\\"}"
  printf '%s=@"%s"' "$1" "$path"
}
form=(-F "$(file_field train_file "$2")")
if [ -n "${3:-}" ]; then
  form+=(-F "$(file_field eval_file "$3")")
fi
form+=(--form-string "model_name=$1" --form-string "base_model=${BASE_MODEL:-smollm2-135m}")
if [ -n "${SYSTEM_PROMPT:-}" ]; then
  form+=(--form-string "system_prompt=${SYSTEM_PROMPT}")
fi
read -r -a extra <<< "${FT_ARGS:-}"
for pair in ${extra[@]+"${extra[@]}"}; do
  if [[ "$pair" != ?*=* ]]; then
    echo "$0: FT_ARGS takes NAME=VALUE pairs, not: $pair" >&2
    exit 2
  fi
  form+=(--form-string "$pair")
done
headers=()
if [ -n "${IDEMPOTENCY_KEY:-}" ]; then
  headers=(-H "Idempotency-Key: ${IDEMPOTENCY_KEY}")
fi

api POST /fine_tune_model ${headers[@]+"${headers[@]}"} "${form[@]}"
