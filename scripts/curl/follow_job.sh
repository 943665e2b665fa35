#!/usr/bin/env bash
# Follow a job: print its server-sent events as they arrive (earlier ones replayed first)
# until the job ends, then the job itself (status, error, metrics).
#   scripts/curl/follow_job.sh JOB_ID
set -euo pipefail
source "$(dirname "$0")/_common.sh"

if [ $# -ne 1 ] || [[ ! "$1" =~ ^[A-Za-z0-9._-]+$ ]]; then
  echo "usage: $0 JOB_ID   (e.g. ftjob-..., from fine_tune.sh or GET /jobs)" >&2
  exit 2
fi
job_id="$1"

api GET "/jobs/${job_id}/events" -H 'Accept: text/event-stream'
api GET "/jobs/${job_id}"
