"""Read one metadata value from a GGUF's header without parsing the rest of the file.

gguf's GGUFReader parses every field and tensor up front: about 10 s for a 49k-token
vocabulary on a loaded 2-core host. The keys the tests ask for (`general.*`) come before
the vocabulary, so this walks the key/value pairs in order, with gguf's own type codes,
and stops at the key asked for.
"""

import struct
from pathlib import Path
from typing import Any, BinaryIO

from gguf import GGUF_MAGIC, GGUFValueType

_SCALARS = {
    GGUFValueType.UINT8: "<B",
    GGUFValueType.INT8: "<b",
    GGUFValueType.UINT16: "<H",
    GGUFValueType.INT16: "<h",
    GGUFValueType.UINT32: "<I",
    GGUFValueType.INT32: "<i",
    GGUFValueType.FLOAT32: "<f",
    GGUFValueType.BOOL: "<?",
    GGUFValueType.UINT64: "<Q",
    GGUFValueType.INT64: "<q",
    GGUFValueType.FLOAT64: "<d",
}


def _read(f: BinaryIO, fmt: str) -> Any:
    return struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0]


def _string(f: BinaryIO) -> str:
    return f.read(_read(f, "<Q")).decode("utf-8", errors="replace")


def _value(f: BinaryIO, kind: int) -> Any:
    if kind == GGUFValueType.STRING:
        return _string(f)
    if kind == GGUFValueType.ARRAY:
        item, count = _read(f, "<I"), _read(f, "<Q")
        return [_value(f, item) for _ in range(count)]
    return _read(f, _SCALARS[GGUFValueType(kind)])


def gguf_value(path: Path | str, key: str) -> Any:
    """The value of metadata `key` in the GGUF at `path`; KeyError when it has none."""
    with open(path, "rb") as f:
        if _read(f, "<I") != GGUF_MAGIC:
            raise ValueError(f"{path} is not a GGUF file")
        _version, _tensors, pairs = _read(f, "<I"), _read(f, "<Q"), _read(f, "<Q")
        for _ in range(pairs):
            name, kind = _string(f), _read(f, "<I")
            value = _value(f, kind)
            if name == key:
                return value
    raise KeyError(f"{path} has no {key!r}")
