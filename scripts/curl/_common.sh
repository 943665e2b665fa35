# Sourced by the curl examples: where the API is, the bearer key, and one `api` function.
#   BASE_URL     the API (default http://127.0.0.1:8000)
#   LLM_API_KEY  sent as `Authorization: Bearer ...` when set
# Every call fails (exit status 22) on an HTTP error and still prints the error body,
# whose `detail` says what to fix.
BASE_URL="${BASE_URL:-http://127.0.0.1:8000}"
BASE_URL="${BASE_URL%/}"
AUTH=()
if [ -n "${LLM_API_KEY:-}" ]; then
  AUTH=(-H "Authorization: Bearer ${LLM_API_KEY}")
fi

# api METHOD PATH [curl arguments...]
api() {
  local method="$1" path="$2" status=0
  shift 2
  curl --silent --show-error --fail-with-body --no-buffer -X "$method" \
    ${AUTH[@]+"${AUTH[@]}"} "$@" "${BASE_URL}${path}" || status=$?
  echo
  return "$status"
}

# json_string TEXT: TEXT as a JSON string literal (quotes, backslashes, control characters).
json_string() {
  local s="$1"
  s="${s//\\/\\\\}"
  s="${s//\"/\\\"}"
  s="${s//$'\n'/\\n}"
  s="${s//$'\r'/\\r}"
  s="${s//$'\t'/\\t}"
  printf '"%s"' "$s"
}
