"""docs/benchmarks.md is shared by the benchmark scripts: each owns one `## ...` section."""

import os
import resource
import time
from pathlib import Path


def write_section(path: Path, heading: str, text: str) -> None:
    """Replace the section that starts with `heading` (or append it); keep every other one."""
    lines = path.read_text().splitlines() if path.is_file() else ["# Benchmarks", ""]
    start = next((i for i, line in enumerate(lines) if line.strip() == heading), None)
    if start is None:
        lines += ["", *text.rstrip("\n").splitlines()]
    else:
        end = next(
            (i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines)
        )
        lines[start:end] = [*text.rstrip("\n").splitlines(), ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines).rstrip("\n") + "\n")


class Quiet:
    """Whether a benchmark ran on a quiet machine. Two checks, both printed with the figures:

    - the 1-minute load average when the run starts (before its own work) is at or under
      `max_load` (default: the core count);
    - during the run, processes other than this one and its children used at most
      `max_outside` cores on average: all busy CPU time (/proc/stat) minus this process's and
      its reaped children's (getrusage). The load average at the end is not the test, since
      the benchmark's own threads raise it to about the core count.
    """

    def __init__(self, max_load: float | None = None, max_outside: float = 0.5):
        self.cores = os.cpu_count() or 1
        self.max_load = self.cores if max_load is None else max_load
        self.max_outside = max_outside
        self.load_start = os.getloadavg()[0]
        self.load_end = self.load_start
        self._t0, self._busy0, self._own0 = time.monotonic(), _busy_seconds(), _own_seconds()
        self.outside = 0.0

    def finish(self) -> "Quiet":
        """Close the span (call after the children have exited and been waited for)."""
        wall = max(time.monotonic() - self._t0, 1e-9)
        busy, own = _busy_seconds() - self._busy0, _own_seconds() - self._own0
        self.outside = max(busy - own, 0.0) / wall
        self.load_end = os.getloadavg()[0]
        return self

    @property
    def quiet(self) -> bool:
        return self.load_start <= self.max_load and self.outside <= self.max_outside

    def describe(self) -> str:
        return (
            f"1-minute load average {self.load_start:.1f} at the start ({self.load_end:.1f} at "
            f"the end, with its own work); other processes used {self.outside:.2f} of "
            f"{self.cores} cores on average during the run"
        )

    def why_not(self) -> str:
        return (
            f"the load average at the start was {self.load_start:.1f} (at most "
            f"{self.max_load:g}) and other processes used {self.outside:.2f} cores during the "
            f"run (at most {self.max_outside:g})"
        )


def _busy_seconds() -> float:
    """CPU seconds all processes spent busy (user, nice, system, irq, softirq, steal)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _own_seconds() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def write_section_if_quiet(path: Path, heading: str, text: str, quiet: Quiet) -> bool:
    """`write_section` only when the run was quiet (figures taken on a busy machine are
    noise); otherwise say why nothing was written."""
    if not quiet.quiet:
        print(
            f"NOT written to {path}: {quiet.why_not()}, so these figures are noise. "
            "Run it on a quiet machine."
        )
        return False
    write_section(path, heading, text)
    return True
