"""The benchmark command's smoke: `scripts/bench.py --quick` writes every section and the chart.

No timing is asserted: benchmarks report speed, tests check that the command keeps working.
"""

import re
import subprocess
import sys

from api.config import REPO_ROOT


def test_quick_bench_writes_every_section_and_the_chart(tmp_path, base_models_dir):
    measured_export = "## Export\n\n| Step | seconds |\n| --- | --- |\n| merge | 7.5 |\n"
    (tmp_path / "benchmarks.md").write_text("# Benchmarks\n\n" + measured_export)
    done = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "scripts" / "bench.py"),
            "--quick",
            "--out",
            str(tmp_path),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = (tmp_path / "benchmarks.md").read_text()
    headings = re.findall(r"(?m)^## (.+)$", report)
    assert headings == ["Fine-tuning", "Serving", "Retrieval", "Export"]
    assert report.startswith("# Benchmarks\n")
    fine_tuning = report.split("## Fine-tuning")[1].split("## Serving")[0]
    assert "| baseline: TRL defaults |" in fine_tuning and "| ours: the recipe |" in fine_tuning
    assert "| careful: TRL for this host |" in fine_tuning
    assert re.search(
        r"Ours vs baseline: [0-9.]+x trained tokens/s, [0-9.]+x peak memory", fine_tuning
    )
    assert re.search(r"(?m)^\| 3 \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \|$", fine_tuning)  # every step
    serving = report.split("## Serving")[1].split("## Retrieval")[0]
    assert re.search(r"API vs llama-server direct: [0-9.]+x decode tokens/s", serving)
    assert "| ours: vector search (Chroma, top-k) |" in report
    assert measured_export in report  # --quick keeps the measured Export section
    chart = (tmp_path / "benchmarks.png").read_bytes()
    assert chart.startswith(b"\x89PNG\r\n\x1a\n") and len(chart) > 5000


def test_bench_rejects_an_unknown_case(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "scripts" / "bench.py"),
            "--only",
            "finetune,speed",
            "--out",
            str(tmp_path),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "unknown case(s) ['speed']" in done.stderr
    assert not (tmp_path / "benchmarks.md").exists()


def run_scale_bench(tmp_path, max_load):
    return subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "scripts" / "bench_retrieval_scale.py"),
            "--chunks",
            "24",
            "--questions",
            "3",
            "--modes",
            "never",
            "--max-load",
            str(max_load),
            "--out",
            str(tmp_path / "benchmarks.md"),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_scale_bench_measures_and_refuses_to_write_on_a_busy_machine(tmp_path):
    busy = run_scale_bench(tmp_path, max_load=-1)  # any load average exceeds it
    assert busy.returncode == 0, busy.stderr[-3000:]
    assert re.search(
        r"(?m)^\| 24 \| never \| [0-9.]+ \| [0-9.]+ \| [0-3]/3 \| [0-9]+ \|$", busy.stdout
    )
    assert "NOT written" in busy.stdout and not (tmp_path / "benchmarks.md").exists()


def test_answer_loss_bench_compares_chunked_with_one_pass(tmp_path):
    """Above one chunk (1,024 positions) the chunked loss equals the one-pass loss and its
    gradients; the section is written when the load gate allows it (here: any load)."""
    report = tmp_path / "benchmarks.md"
    done = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "scripts" / "bench_answer_loss.py"),
            "--tokens",
            "1500",
            "--max-load",
            "1000",
            "--out",
            str(report),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    text = report.read_text()
    assert "## Answer-only loss" in text
    assert re.search(
        r"(?m)^\| 1,500 \| \d+ \| \d+ \| [0-9.]+x \| [0-9.]+ \| [0-9.]+ \| [0-9.]+x \| yes \| yes \|$",
        text,
    )
