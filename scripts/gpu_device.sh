#!/usr/bin/env bash
# The GPU check on the lent device machine (no network): the one command of README "GPU check".
#   device run: command `bash scripts/gpu_device.sh`, carry [".gpu-bundle"]
# Installs the carried bundle (scripts/gpu_bundle.py build, made beforehand on a machine with the
# package index) into /tmp (the GPTQ packages into their own directory, pypcre compiled there),
# puts it in front of the image's own packages (its torch, numpy, ...),
# runs scripts/gpu_check.py, and leaves the report, gpu-check.json, api.log and the whole
# output in $OUT (the folder the device tool brings back).
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${GPU_PY:-python3}"
SITE="${GPU_SITE:-/tmp/gpu-site}"
BUNDLE="${GPU_BUNDLE:-.gpu-bundle}"
OUT="${OUT:-/tmp/gpu-check-out}"
mkdir -p "$OUT"
if [ ! -f "$BUNDLE/MANIFEST.json" ]; then
  echo "no $BUNDLE/MANIFEST.json: run scripts/gpu_bundle.py build first and carry .gpu-bundle" >&2
  exit 1
fi
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
{
  echo "==> $(date -u +%H:%M:%S) device: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -1); $("$PY" --version 2>&1)"
  export LLM_GPTQ_DIR="${GPU_GPTQ_DIR:-/tmp/gpu-gptq}"  # api/finetune/gptq.py looks there
  "$PY" scripts/gpu_bundle.py unpack --bundle "$BUNDLE" --site "$SITE" --gptq-dir "$LLM_GPTQ_DIR" || exit 1
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
  "$PY" scripts/gpu_check.py --artifacts "$OUT" --standin "$BUNDLE/smollm2-135m-hf" "$@"
} 2>&1 | tee "$OUT/gpu-check.log"
exit "${PIPESTATUS[0]}"
