"""The one rule for model names: they become file and collection names, so no path tricks."""

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, Field

from api.errors import InvalidInput

# 1-63 characters; the last one is not a dot (Windows and SMB drop trailing dots, so
# "pirate." and "pirate" would name the same directory on such a shared volume).
NAME_PATTERN = r"^[a-z0-9](?:[a-z0-9._-]{0,61}[a-z0-9_-])?$"
_NAME_RE = re.compile(NAME_PATTERN)
NAME_RULE = (
    "1-63 characters: lowercase ASCII letters, digits, '.', '_' or '-', starting with a letter "
    "or digit, not ending with '.', and no '..'"
)


def is_valid_name(name: str) -> bool:
    return bool(_NAME_RE.fullmatch(name)) and ".." not in name


def check_name(name: str, *, what: str = "model name") -> str:
    """Return `name` unchanged, or raise InvalidInput saying what a valid name looks like."""
    if not is_valid_name(name):
        raise InvalidInput(f"Invalid {what} {name!r}: use {NAME_RULE}.")
    return name


def _valid(value: Any) -> Any:
    if isinstance(value, str) and not is_valid_name(value):
        raise ValueError(f"invalid name {value[:80]!r}: use {NAME_RULE}")
    return value


# A request field holding a model name: the 422 says what a valid name looks like.
ModelName = Annotated[str, Field(pattern=NAME_PATTERN), BeforeValidator(_valid)]
