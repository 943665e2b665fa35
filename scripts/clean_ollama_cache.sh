#!/usr/bin/env bash
# Remove the platform's models from Ollama's model volume: every `llmp/<name>:latest`
# (with --all: every model, pulled ones too). Ollama drops the blobs no model uses any
# more. Nothing in the platform is lost: its bases, variants and fine-tunes live in the
# shared volume and the registry, and the API imports a model into Ollama again the
# next time it is used.
#   scripts/clean_ollama_cache.sh [--yes] [--all]
# OLLAMA_CMD is how to run the ollama CLI (default: inside the compose service).
set -euo pipefail

usage() { echo "usage: $0 [--yes] [--all]" >&2; exit 2; }
yes=false
all=false
for arg in "$@"; do
  case "$arg" in
    --yes|-y) yes=true ;;
    --all) all=true ;;
    *) usage ;;
  esac
done
read -r -a ollama <<< "${OLLAMA_CMD:-docker compose exec -T ollama ollama}"

names=$("${ollama[@]}" list | awk 'NR > 1 { print $1 }')
if [ "$all" = false ]; then
  names=$(grep '^llmp/' <<< "$names" || true)
fi
if [ -z "$names" ]; then
  echo "Nothing to remove."
  exit 0
fi
echo "These models will be removed from Ollama:"
sed 's/^/  /' <<< "$names"
if [ "$yes" = false ]; then
  read -r -p "Remove them? [y/N] " answer || answer=""
  case "$answer" in
    y|Y|yes|YES) ;;
    *) echo "Nothing removed."; exit 1 ;;
  esac
fi
while read -r name; do
  "${ollama[@]}" rm "$name"
done <<< "$names"
echo "Removed $(wc -l <<< "$names") model(s)."
