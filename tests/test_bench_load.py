"""The load benchmark's smoke: `scripts/bench_load.py --quick` against a real uvicorn process
while a fine-tuning job trains. Correctness only (no 5xx, no connection error, valid bodies,
one training job at a time, the second queued); timings are reported, never asserted."""

import json
import re
import subprocess
import sys

import pytest

from api.config import REPO_ROOT

pytestmark = pytest.mark.load


def test_quick_load_run_has_no_errors_and_one_job_at_a_time(tmp_path, base_models_dir):
    report, raw = tmp_path / "benchmarks.md", tmp_path / "load.json"
    report.write_text("# Benchmarks\n\n## Serving\n\nkept as it is\n")
    done = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "scripts" / "bench_load.py"),
            "--quick",
            "--out",
            str(report),
            "--json",
            str(raw),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(raw.read_text())["llamaserver"]  # --quick: the default backend only
    assert result["failures"] == []
    assert result["training_samples"] > 0  # the loaded phase really overlapped training
    for side in ("baseline", "training"):
        counts = {endpoint: len(v) for endpoint, v in result["latencies"][side].items()}
        assert counts == {"POST /generate": 6, "GET /listModels": 6, "GET /jobs": 6}
    text = report.read_text()
    assert re.findall(r"(?m)^## (.+)$", text) == ["Serving", "Load"]
    assert "kept as it is" in text
    assert re.search(
        r"(?m)^\| `POST /generate` \| 6 \+ 6 \| \d+ \| \d+ \| \d+ \| \d+ \| "
        r"[0-9.]+x \| [0-9.]+x \|$",
        text,
    )
    assert "Errors (5xx, connection errors, invalid bodies): 0." in text
