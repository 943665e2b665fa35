#!/usr/bin/env bash
# Cancel a queued or running job (a cancelled one stays cancelled; a finished one is 409).
#   scripts/curl/cancel_job.sh JOB_ID
set -euo pipefail
source "$(dirname "$0")/_common.sh"

if [ $# -ne 1 ] || [[ ! "$1" =~ ^[A-Za-z0-9._-]+$ ]]; then
  echo "usage: $0 JOB_ID" >&2
  exit 2
fi
job_id="$1"

api POST "/jobs/${job_id}/cancel"
