"""A model's downloadable files: listed with kind, size and sha256, and looked up by path.

What a model has on disk:
- a provisioned base, DATA_DIR/models/<name>/: `model.gguf` (kind `gguf`) and its HF
  checkpoint under `hf/` (kind `checkpoint`);
- a fine-tuned model, its job's directory (api/jobs/layout.py): `export/model-<TYPE>.gguf`
  (kind `gguf`, one per quantisation type), `export/adapter.gguf` (kind `adapter_gguf`),
  `export/result.json` (kind `export_result`) and the trained PEFT adapter under
  `adapter/` (kind `peft_adapter`);
- a fine-tuning job's result that is not served (`export: none`, or an export that failed):
  the trained adapter under `adapter/` of the newest succeeded job that named it.

Only regular files inside the model's directory are listed, never symbolic links, and a
download is served only for a path that the listing holds: no path trick reaches anything
else. sha256 sums are cached per (path, size, mtime, inode), so a GGUF is hashed once.
"""

import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path

from api.errors import NotFound
from api.jobs.store import JobStore
from api.models.catalog import BaseCatalog, BaseModelInfo
from api.models.registry import VariantRegistry
from api.serving.base import LibraryModel

_CHUNK = 1 << 20


@dataclass(frozen=True)
class ModelFile:
    kind: str
    path: str  # relative to the model's directory, '/'-separated
    size: int
    sha256: str
    absolute: Path


class HashCache:
    """sha256 per file, recomputed only when the file's size, mtime or inode changes."""

    def __init__(self) -> None:
        self._sums: dict[Path, tuple[tuple[int, int, int], str]] = {}
        self._lock = threading.Lock()

    def sha256(self, path: Path) -> str:
        stat = path.stat()
        key = (stat.st_size, stat.st_mtime_ns, stat.st_ino)
        with self._lock:
            cached = self._sums.get(path)
        if cached is not None and cached[0] == key:
            return cached[1]
        digest = hashlib.sha256()
        with path.open("rb") as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
        with self._lock:
            self._sums[path] = (key, digest.hexdigest())
        return digest.hexdigest()


def _regular_files(root: Path, sub: str) -> list[Path]:
    """Regular files under root/sub (or root/sub itself), no links, none outside root."""
    start = root / sub
    if start.is_symlink() or not start.exists():
        return []
    if start.is_file():
        return [start]
    found = []
    for path in sorted(start.rglob("*")):
        if any(p.is_symlink() for p in (path, *path.parents) if p.is_relative_to(root)):
            continue
        if path.is_file() and path.resolve().is_relative_to(root):
            found.append(path)
    return found


def _export_kind(rel: str) -> str:
    name = rel.removeprefix("export/")
    if name == "adapter.gguf":
        return "adapter_gguf"
    if name.endswith(".gguf"):
        return "gguf"
    if name == "result.json":
        return "export_result"
    return "export"


class ModelFiles:
    """The files of bases and fine-tuned models, for GET /models/{name}/files."""

    def __init__(
        self, *, catalog: BaseCatalog, registry: VariantRegistry, jobs: JobStore, jobs_dir: Path
    ):
        self.catalog, self.registry, self.jobs, self.jobs_dir = catalog, registry, jobs, jobs_dir
        self.hashes = HashCache()

    def _trained(self) -> dict[str, Path]:
        """Model names of succeeded fine-tuning jobs with an adapter -> the newest job's dir."""
        found: dict[str, Path] = {}
        for job in self.jobs.list(states=("succeeded",), kind="fine_tune", limit=1000):
            if job.model_name not in found and job.files.has_adapter():
                found[job.model_name] = job.files.root
        return found

    def _entries(self, name: str) -> tuple[Path, list[tuple[str, str]]]:
        """The model's directory (resolved) and its (kind, sub-path) groups."""
        base = self.catalog.local(name)
        if isinstance(base, BaseModelInfo):
            groups = [("gguf", base.gguf_file)]
            if base.hf_dir:
                groups.append(("checkpoint", base.hf_dir))
            return base.directory.resolve(), groups
        variant = self.registry.get(name)
        trained = self._trained().get(name) if variant is None else None
        if trained is not None:
            return trained.resolve(), [("peft_adapter", "adapter")]
        if variant is None:
            other = self.catalog.get(name)
            if isinstance(other, LibraryModel):
                raise NotFound(
                    f"{name!r} is Ollama's model {other.ollama_model!r}: its files are Ollama's "
                    "(`ollama show`), not downloadable here."
                )
            known = ", ".join(self.names()) or "none"
            raise NotFound(f"Model {name!r} not found. Models with files: {known}.")
        owned = variant.gguf_path or variant.adapter_path
        job_dir = Path(owned).resolve().parent.parent if owned else None
        if job_dir is None or not job_dir.is_relative_to(self.jobs_dir.resolve()):
            raise NotFound(
                f"{name!r} is a variant of {variant.base_model!r} with no files of its own "
                f"(a system prompt and options): download {variant.base_model!r} instead."
            )
        return job_dir, [("export", "export"), ("peft_adapter", "adapter")]

    def names(self) -> list[str]:
        bases = [b.name for b in self.catalog.local_list()]
        tuned = [v.name for v in self.registry.list() if v.gguf_path or v.adapter_path]
        return bases + tuned + sorted(set(self._trained()) - set(tuned))

    def paths(self, name: str) -> tuple[Path, list[tuple[str, str, Path]]]:
        """The model's directory and its files as (kind, relative path, absolute path),
        without hashing them."""
        root, groups = self._entries(name)
        found = []
        for kind, sub in groups:
            for path in _regular_files(root, sub):
                rel = path.relative_to(root).as_posix()
                found.append((_export_kind(rel) if kind == "export" else kind, rel, path))
        return root, found

    def list(self, name: str) -> list[ModelFile]:
        _, found = self.paths(name)
        return [
            ModelFile(
                kind=kind,
                path=rel,
                size=path.stat().st_size,
                sha256=self.hashes.sha256(path),
                absolute=path,
            )
            for kind, rel, path in found
        ]

    def get(self, name: str, path: str) -> Path:
        """The absolute path of one listed file (NotFound for any other path)."""
        root, groups = self._entries(name)
        for _, sub in groups:
            for found in _regular_files(root, sub):
                if found.relative_to(root).as_posix() == path:
                    return found
        raise NotFound(f"Model {name!r} has no file {path[:200]!r}: see GET /models/{name}/files.")
