#!/usr/bin/env bash
# Build llama.cpp's own tools (llama-server, llama-quantize, llama-export-lora) into
# llama.cpp/bin/ from the llama.cpp source the llama-cpp-python sdist vendors (the same
# pinned commit the converters come from). Cached: the build is keyed by the version, the
# CMake flags and the CPU features the native build targets (api/serving/cpu.py), so a
# second `make setup` does nothing. The smallest build that serves: Release, static, native
# CPU kernels, no tests, examples, web UI, HTTPS or network download.
# The image (api/Dockerfile) builds llama-quantize alone, portable: LLAMA_NATIVE=OFF
# LLAMA_TARGETS=llama-quantize.
set -euo pipefail
VERSION="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DEST="$ROOT/llama.cpp/bin"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
JOBS="${LLAMA_BUILD_JOBS:-$(nproc 2>/dev/null || echo 2)}"
read -r -a TARGETS <<<"${LLAMA_TARGETS:-llama-server llama-quantize llama-export-lora}"
NATIVE="${LLAMA_NATIVE:-ON}"
FLAGS=(
  -DCMAKE_BUILD_TYPE=Release
  -DBUILD_SHARED_LIBS=OFF
  -DGGML_NATIVE="$NATIVE"
  -DLLAMA_BUILD_TESTS=OFF
  -DLLAMA_BUILD_EXAMPLES=OFF
  -DLLAMA_BUILD_UI=OFF
  -DLLAMA_USE_PREBUILT_UI=OFF
  -DLLAMA_OPENSSL=OFF
)
if [ "$NATIVE" = ON ]; then
  CPU="$(cd "$ROOT" && "$PY" -c 'from api.serving.cpu import host_cpu; print(" ".join(host_cpu().reported))')"
else
  CPU=portable
fi
KEY="$VERSION|${FLAGS[*]}|${TARGETS[*]}|$CPU"

if [ "$(cat "$DEST/.key" 2>/dev/null)" = "$KEY" ] && [ -x "$DEST/${TARGETS[0]}" ]; then
  echo "==> llama.cpp tools ($VERSION, CPU: ${CPU:-none}) already built in llama.cpp/bin/"
  exit 0
fi
echo "==> building llama.cpp's ${TARGETS[*]} ($VERSION; about 10 minutes on 2 idle cores)"
START=$(date +%s)
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
"$PY" -m pip download --quiet --no-deps --no-binary :all: "llama-cpp-python==$VERSION" -d "$TMP"
tar -xzf "$TMP"/llama_cpp_python-"$VERSION".tar.gz -C "$TMP"
SRC="$TMP/llama_cpp_python-$VERSION/vendor/llama.cpp"
GEN=()
command -v ninja >/dev/null && GEN=(-G Ninja)
cmake -S "$SRC" -B "$TMP/build" "${GEN[@]}" "${FLAGS[@]}" >"$TMP/configure.log" 2>&1 \
  || { tail -40 "$TMP/configure.log"; exit 1; }
cmake --build "$TMP/build" -j "$JOBS" --target "${TARGETS[@]}" >"$TMP/build.log" 2>&1 \
  || { tail -60 "$TMP/build.log"; exit 1; }
mkdir -p "$DEST.tmp"
for t in "${TARGETS[@]}"; do
  cp "$TMP/build/bin/$t" "$DEST.tmp/$t"
done
strip "$DEST.tmp"/* 2>/dev/null || true
echo "$KEY" > "$DEST.tmp/.key"
rm -rf "$DEST"
mv "$DEST.tmp" "$DEST"
echo "==> llama.cpp tools ready in llama.cpp/bin/ ($(( $(date +%s) - START )) s)"
