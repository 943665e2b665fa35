#!/usr/bin/env bash
# Unpack llama.cpp's converters (convert_hf_to_gguf.py, convert_lora_to_gguf.py, conversion/, gguf-py)
# into llama.cpp/ from the llama-cpp-python sdist, which vendors llama.cpp at a pinned
# commit. Idempotent: does nothing when the pinned version is already there.
# llama.cpp's binaries (llama-server, llama-quantize, llama-export-lora) are built from the
# same sdist by scripts/build_llamacpp.sh.
set -euo pipefail
VERSION="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DEST="$ROOT/llama.cpp"
PY="${PYTHON:-$ROOT/.venv/bin/python}"

if [ "$(cat "$DEST/.version" 2>/dev/null)" = "$VERSION" ]; then
  echo "==> llama.cpp converters $VERSION already in llama.cpp/"
  exit 0
fi
echo "==> unpacking llama.cpp converters from the llama-cpp-python $VERSION sdist"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
"$PY" -m pip download --quiet --no-deps --no-binary :all: "llama-cpp-python==$VERSION" -d "$TMP"
tar -xzf "$TMP"/llama_cpp_python-"$VERSION".tar.gz -C "$TMP"
SRC="$TMP/llama_cpp_python-$VERSION/vendor/llama.cpp"
mkdir -p "$DEST"
rm -rf "$DEST/gguf-py" "$DEST/conversion"
cp "$SRC"/convert_hf_to_gguf.py "$SRC"/convert_lora_to_gguf.py "$DEST"/
cp -r "$SRC"/gguf-py "$SRC"/conversion "$DEST"/
cp "$SRC"/LICENSE "$DEST"/LICENSE
echo "$VERSION" > "$DEST/.version"
echo "==> llama.cpp converters ready in llama.cpp/"
