#!/usr/bin/env bash
# Starts a Ray node of the cluster profile (docker-compose.yml): `head` or `worker`.
# Token authentication is always on (Ray 2.52+): without RAY_AUTH_TOKEN the node refuses
# to start, since an unauthenticated Ray cluster runs any code it is sent.
set -euo pipefail
role=${1:?usage: ray-node.sh head|worker}
if [[ -z "${RAY_AUTH_TOKEN:-}" ]]; then
    echo "ray-node: set RAY_AUTH_TOKEN in .env (e.g. python3 -c \"import secrets; print(secrets.token_urlsafe(32))\")" >&2
    exit 1
fi
export RAY_AUTH_MODE=token
case "$role" in
    head)
        # No GPUs and no CPUs for tasks: the head schedules, the workers run the jobs.
        # The dashboard listens on the internal network only (no published port).
        exec ray start --head --port=6379 --num-gpus=0 --num-cpus=0 \
            --dashboard-host=0.0.0.0 --disable-usage-stats --block
        ;;
    worker)
        exec ray start --address=ray-head:6379 --disable-usage-stats --block
        ;;
    *)
        echo "ray-node: unknown role '$role' (head or worker)" >&2
        exit 2
        ;;
esac
