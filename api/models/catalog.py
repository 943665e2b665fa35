"""Base models: provisioned into DATA_DIR/models/<name>/ by load_base_model.py, and those
the serving backend has of its own (Ollama's library, api/models/library.py).

A provisioned base is complete when its `base.json` manifest exists: provisioning writes
the files first and the manifest last, so a half-provisioned directory is never listed.
A provisioned base hides a library model of the same name.
"""

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from api.errors import AppError
from api.names import is_valid_name
from api.serving.base import LibraryModel

log = logging.getLogger(__name__)

MANIFEST = "base.json"


@dataclass(frozen=True)
class BaseModelInfo:
    name: str
    directory: Path
    gguf_file: str
    hf_dir: str | None
    source: str
    created_at: str

    @property
    def gguf_path(self) -> Path:
        return self.directory / self.gguf_file

    @property
    def hf_path(self) -> Path | None:
        return self.directory / self.hf_dir if self.hf_dir else None

    def manifest(self) -> dict[str, str | None]:
        return {
            "name": self.name,
            "gguf_file": self.gguf_file,
            "hf_dir": self.hf_dir,
            "source": self.source,
            "created_at": self.created_at,
        }


def read_base(directory: Path) -> BaseModelInfo | None:
    """The base model in `directory`, or None when it is missing or incomplete."""
    try:
        data = json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    info = BaseModelInfo(
        name=directory.name,
        directory=directory,
        gguf_file=data["gguf_file"],
        hf_dir=data.get("hf_dir"),
        source=data.get("source", "unknown"),
        created_at=data.get("created_at", ""),
    )
    return info if info.gguf_path.is_file() else None


def write_manifest(info: BaseModelInfo) -> None:
    tmp = info.directory / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(info.manifest(), indent=2))
    tmp.replace(info.directory / MANIFEST)


Base = BaseModelInfo | LibraryModel


class BaseCatalog:
    """Read-only view of the base models: provisioned ones, then the backend's library
    (`library` raises an AppError such as Unavailable when the backend cannot be asked)."""

    def __init__(self, models_dir: Path, library: Callable[[], list[LibraryModel]] | None = None):
        self.models_dir = models_dir
        self.library = library

    def local_list(self) -> list[BaseModelInfo]:
        if not self.models_dir.is_dir():
            return []
        found = (read_base(d) for d in sorted(self.models_dir.iterdir()) if d.is_dir())
        return [b for b in found if b is not None and is_valid_name(b.name)]

    def local(self, name: str) -> BaseModelInfo | None:
        """A provisioned base only (no call to the backend)."""
        if not is_valid_name(name):
            return None
        return read_base(self.models_dir / name)

    def list(self) -> list[Base]:
        """All bases; when the backend cannot be asked, the provisioned ones (logged)."""
        local: list[Base] = list(self.local_list())
        if self.library is None:
            return local
        try:
            library = self.library()
        except AppError as exc:
            log.warning("library models not listed: %s", exc.detail)
            return local
        taken = {b.name for b in local}
        return local + [m for m in library if m.name not in taken]

    def get(self, name: str) -> Base | None:
        base = self.local(name)
        if base is not None or self.library is None or not is_valid_name(name):
            return base
        return next((m for m in self.library() if m.name == name), None)
