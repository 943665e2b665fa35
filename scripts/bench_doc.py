"""docs/benchmarks.md is shared by the benchmark scripts: each owns one `## ...` section."""

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


def write_section_if_quiet(
    path: Path, heading: str, text: str, loads: tuple[float, float], max_load: float
) -> bool:
    """`write_section` only when the 1-minute load average stayed at or under `max_load`
    (figures taken on a busy machine are noise); otherwise say why nothing was written."""
    if max(loads) > max_load:
        print(
            f"NOT written to {path}: the load average ({loads[0]:.1f}, {loads[1]:.1f}) "
            f"exceeded {max_load:g}, so these figures are noise. Run it on a quiet machine."
        )
        return False
    write_section(path, heading, text)
    return True
