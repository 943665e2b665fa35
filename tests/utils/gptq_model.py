"""A GPTQ checkpoint of the tiny Llama, quantised here on the CPU with transformers' GPTQ
integration (api/finetune/gptq.py `quantise`: GPTQConfig; optimum + gptqmodel from
.venv/gptq). Run as a subprocess (`python -m tests.utils.gptq_model SRC_HF OUT_DIR`) so the
pytest process never imports gptqmodel (it sets process-wide environment variables on
import)."""

import sys
from pathlib import Path

# calibration text in the style of the training rows (tests/utils/tiny_model.py qa_csv)
CALIBRATION = [f"What is {i} plus {i}? {i} plus {i} is {2 * i}. Have a nice day!" for i in range(8)]


if __name__ == "__main__":
    from api.finetune import gptq

    gptq.quantise(Path(sys.argv[1]), Path(sys.argv[2]), CALIBRATION, bits=4, group_size=32)
