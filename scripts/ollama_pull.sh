#!/usr/bin/env bash
# Pull Ollama library models into the running compose `ollama` service. The service sits
# on the internal network only (no way out), so this connects it to the project's `egress`
# network for the pull and disconnects it afterwards, also when a pull fails or is stopped.
#   scripts/ollama_pull.sh MODEL [MODEL...]   (no MODEL: OLLAMA_BASE_MODEL, or from .env)
# Run it from the repository root. DOCKER is how to run the docker CLI (default: docker);
# COMPOSE_PROJECT_NAME as for docker compose (default: the file's name, llm-platform).
set -euo pipefail
read -r -a docker <<< "${DOCKER:-docker}"
network="${COMPOSE_PROJECT_NAME:-llm-platform}_egress"

models=("$@")
if [ ${#models[@]} -eq 0 ]; then
  model="${OLLAMA_BASE_MODEL:-$(sed -n 's/^OLLAMA_BASE_MODEL=//p' .env 2>/dev/null || true)}"
  if [ -z "$model" ]; then
    echo "usage: $0 MODEL [MODEL...]   (or set OLLAMA_BASE_MODEL in .env)" >&2
    exit 2
  fi
  models=("$model")
fi

container=$("${docker[@]}" compose ps -q ollama)
if [ -z "$container" ]; then
  echo "The ollama service is not running: start it with 'docker compose up -d'." >&2
  exit 1
fi
echo "==> connecting ollama to $network for the pull"
"${docker[@]}" network connect "$network" "$container"
disconnect() {
  "${docker[@]}" network disconnect "$network" "$container"
  echo "==> ollama is on the internal network only again"
}
trap disconnect EXIT
for model in "${models[@]}"; do
  echo "==> pulling $model"
  "${docker[@]}" compose exec -T ollama ollama pull "$model"
done
