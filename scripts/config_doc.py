"""Write docs/configuration.md from the Settings class, so the settings table cannot drift.

    .venv/bin/python scripts/config_doc.py           # rewrite docs/configuration.md
    .venv/bin/python scripts/config_doc.py --check   # exit 1 when the file is stale

Every `LLM_*` variable, its default and its description come from `api/config.py`;
tests/test_config_doc.py fails when the committed file differs from what this writes.
"""

import argparse
import socket
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api.config import REPO_ROOT, Settings  # noqa: E402

OUT = ROOT / "docs" / "configuration.md"
HEADER = """# Configuration

Generated from `api/config.py` by `scripts/config_doc.py`; do not edit by hand.

The service reads these environment variables (or a `.env` file in its working
directory) once at start-up and validates them: a bad value stops it with a message
naming the variable. `make run` also takes the make variables `HOST` and `PORT`
(default `127.0.0.1` and `8000`).

| Variable | Default | Meaning |
| --- | --- | --- |
"""


def _default(name: str, field: object) -> str:
    factory = getattr(field, "default_factory", None)
    if factory is not None:  # computed at start-up, e.g. this host's name
        return "the hostname" if factory is socket.gethostname else "computed at start-up"
    value = getattr(field, "default", None)
    if value is None:
        return "unset"
    if hasattr(value, "get_secret_value"):
        return "unset"
    if isinstance(value, Path):
        try:
            return f"`./{value.relative_to(REPO_ROOT)}`"
        except ValueError:
            return f"`{value}`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value}`"


def render() -> str:
    rows = []
    for name, field in Settings.model_fields.items():
        description = (field.description or "").replace("|", "\\|").replace("\n", " ")
        rows.append(f"| `LLM_{name.upper()}` | {_default(name, field)} | {description} |")
    return HEADER + "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when the file is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = OUT.read_text() if OUT.is_file() else ""
        if current != text:
            print(f"{OUT} is stale: run scripts/config_doc.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    print(f"==> wrote {OUT} ({len(Settings.model_fields)} settings)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
