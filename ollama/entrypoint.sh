#!/bin/bash
# The ollama container's entrypoint: start the server, say whether OLLAMA_BASE_MODEL (an
# Ollama library name such as smollm2:135m) is in the model volume, then mark the container
# ready for its healthcheck and wait on the server.
# The container has no outbound network, so nothing is pulled here: an operator pulls with
# scripts/ollama_pull.sh (docs/production.md). The platform's own models (bases in
# shared/models, variants, fine-tunes) are imported by the API through Ollama's blob and
# create endpoints.
set -euo pipefail

READY=/tmp/platform-ready
rm -f "$READY"

ollama serve &
server=$!
trap 'kill -TERM "$server" 2>/dev/null; wait "$server"' TERM INT

echo "==> waiting for the Ollama server"
until ollama list > /dev/null 2>&1; do
  if ! kill -0 "$server" 2>/dev/null; then
    echo "ollama serve exited during start-up" >&2
    wait "$server"
    exit 1
  fi
  sleep 1
done

if [ -n "${OLLAMA_BASE_MODEL:-}" ]; then
  if ollama show "$OLLAMA_BASE_MODEL" > /dev/null 2>&1; then
    echo "==> base model $OLLAMA_BASE_MODEL is in the model volume"
  else
    echo "==> base model $OLLAMA_BASE_MODEL is not pulled yet; this container has no" \
         "outbound network: run scripts/ollama_pull.sh on the host" >&2
  fi
fi

touch "$READY"
echo "==> Ollama ready"
wait "$server"
