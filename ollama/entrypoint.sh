#!/bin/bash
# The ollama container's entrypoint: start the server, pull OLLAMA_BASE_MODEL (an Ollama
# library name such as smollm2:135m) when the model volume does not have it yet, then mark
# the container ready for its healthcheck and wait on the server.
# The platform's own models (bases in shared/models, variants, fine-tunes) are imported
# by the API through Ollama's blob and create endpoints, not here.
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
    echo "==> base model $OLLAMA_BASE_MODEL already in the model volume"
  else
    echo "==> first start: pulling base model $OLLAMA_BASE_MODEL"
    if ! ollama pull "$OLLAMA_BASE_MODEL"; then
      # Keep serving: the API imports its models from the shared volume without the pull.
      echo "could not pull $OLLAMA_BASE_MODEL (no network?); it will be tried again at the" \
           "next start" >&2
    fi
  fi
fi

touch "$READY"
echo "==> Ollama ready"
wait "$server"
