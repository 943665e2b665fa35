"""KEY=VALUE options of the command line."""

import json
from typing import Any

from api.cli.client import fail


def parse_sets(items: list[str], *, typed: bool = True) -> dict[str, Any]:
    """`["temperature=0.2", "stop=[\\"x\\"]"]` -> {"temperature": 0.2, "stop": ["x"]}; values
    are JSON when they parse as JSON (`typed`), else strings."""
    parsed: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            fail(f"Expected KEY=VALUE, got {item!r}.")
        if typed:
            try:
                parsed[key.strip()] = json.loads(value)
                continue
            except ValueError:
                pass
        parsed[key.strip()] = value
    return parsed
