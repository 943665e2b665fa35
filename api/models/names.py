"""The one rule for model names: they become file and collection names, so no path tricks."""

import re

from api.errors import InvalidInput

NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,62}$"
_NAME_RE = re.compile(NAME_PATTERN)
NAME_RULE = (
    "1-63 characters: lowercase letters, digits, '.', '_' or '-', starting with a letter "
    "or digit, and no '..'"
)


def is_valid_name(name: str) -> bool:
    return bool(_NAME_RE.fullmatch(name)) and ".." not in name


def check_name(name: str, *, what: str = "model name") -> str:
    """Return `name` unchanged, or raise InvalidInput saying what a valid name looks like."""
    if not is_valid_name(name):
        raise InvalidInput(f"Invalid {what} {name!r}: use {NAME_RULE}.")
    return name
