"""Production backend: an Ollama server, through the official `ollama` client.

Names (ollama_names.py). The platform's model `hr-bot` is the Ollama model
`llmp/hr-bot:latest`; models pulled into Ollama by hand (`llama3.2:3b`) are offered as bases
(`library_models`) under names that follow our rules (`llama3.2-3b`).

Import. /api/create takes files by sha256 digest, not by path, so each GGUF or adapter is
uploaded once as a blob (HEAD first: a base of gigabytes is not sent again for every
variant). Then, as `register` decides from the model's files:
- a provisioned base (its GGUF is DATA_DIR/models/<base>/model.gguf) is created from `files`;
- a variant of a base is created `from` the base (imported first when Ollama lacks it),
  with `system`, `template`, `parameters` and, for a LoRA, `adapters`;
- a model with its own GGUF (a merged fine-tune) is created from that GGUF's `files`;
- a variant of a library base is created `from` that Ollama model; the library base itself
  needs nothing created: chats go to its Ollama name.
A chat for a model Ollama does not have (after an Ollama volume was wiped) imports it once
and retries.

Unload. `unload_all` asks Ollama which models are loaded (/api/ps) and unloads each with
an empty /api/generate and `keep_alive: 0` (docs/api.md, "Unload a model"), so a training
job gets the GPU memory.

Errors. Every stream is read line by line: Ollama reports some failures as an
`{"error": ...}` line after a 200 status. Connection failures are retried with backoff
where that is safe; everything else becomes a domain error naming the URL and what to do.
"""

import hashlib
import logging
import re
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from itertools import chain
from pathlib import Path
from typing import Any, TypeVar

import httpx

from api.config import Settings
from api.db import db_lock
from api.errors import AppError, InvalidInput, Unavailable
from api.serving.base import Chunk, LibraryModel, ServedModel
from api.serving.ollama_names import library_models, library_name, ollama_name, platform_name
from api.serving.scrub import scrub_paths
from ollama import Client, ResponseError

__all__ = ["OllamaServer", "ollama_name", "ollama_options", "platform_name"]

log = logging.getLogger(__name__)
T = TypeVar("T")

# Our option names -> Ollama's (Modelfile PARAMETER names and /api/chat `options`).
OPTION_NAMES = {
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "repeat_penalty": "repeat_penalty",
    "max_tokens": "num_predict",
    "stop": "stop",
    "seed": "seed",
}
_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_GO_TEMPLATE_RE = re.compile(r"\{\{-?\s*(\.|range\s+\.|if\s+\.)")


def ollama_options(options: dict[str, Any]) -> dict[str, Any]:
    """Our sampling options with Ollama's names; seed -1 (random) is Ollama's default."""
    out = {OPTION_NAMES[k]: v for k, v in options.items() if k in OPTION_NAMES and v is not None}
    if out.get("seed") == -1:
        del out["seed"]
    return out


def _is_library_base(model: ServedModel) -> bool:
    """The Ollama library model itself (not a variant built on it)."""
    return model.ollama_base is not None and library_name(model.ollama_base) == model.name


def _target(model: ServedModel) -> str:
    """The Ollama model a chat goes to."""
    if model.ollama_base is not None and _is_library_base(model):
        return model.ollama_base
    return ollama_name(model.name)


def _scrub(message: str) -> str:
    """Ollama's errors can name absolute paths on its host (ollama#13223): keep file names."""
    return scrub_paths(message)


class OllamaServer:
    def __init__(self, settings: Settings, *, backoff: float = 0.5):
        self.url = settings.ollama_url.rstrip("/")
        self.context_length = settings.context_length
        self.retries = settings.ollama_retries
        self.backoff = backoff
        self.timeout = settings.ollama_timeout
        self._client = Client(
            host=self.url,
            timeout=httpx.Timeout(settings.ollama_timeout, connect=settings.ollama_connect_timeout),
        )
        self._digests: dict[tuple[Path, int, int], str] = {}
        self._settings = settings

    # -- errors and retries -------------------------------------------------------------

    def _error(self, exc: Exception, what: str) -> AppError:
        if isinstance(exc, ConnectionError | httpx.ConnectError):
            return Unavailable(
                f"Ollama is not reachable at {self.url} ({what}). Start it (`docker compose up "
                "-d ollama`) or point LLM_OLLAMA_URL at a running Ollama server."
            )
        if isinstance(exc, httpx.TimeoutException):
            return Unavailable(
                f"Ollama at {self.url} did not answer within {self.timeout:g} s ({what}); it may "
                "be loading a model or overloaded. Retry later or raise LLM_OLLAMA_TIMEOUT."
            )
        if isinstance(exc, httpx.TransportError):
            return Unavailable(
                f"Lost the connection to Ollama at {self.url} ({what}): "
                f"{type(exc).__name__}. Retry; check Ollama's log if it persists."
            )
        if isinstance(exc, ResponseError):
            detail = _scrub(str(exc.error))
            if exc.status_code == 503:
                return Unavailable(
                    f"Ollama at {self.url} is busy (its queue is full) ({what}); retry later."
                )
            if exc.status_code == 400:
                return InvalidInput(f"Ollama refused {what}: {detail}")
            if exc.status_code == -1:
                return Unavailable(f"Ollama reported an error during {what}: {detail}")
            return Unavailable(f"Ollama answered HTTP {exc.status_code} to {what}: {detail}")
        if isinstance(exc, ValueError):  # undecodable JSON, or a line without the fields
            return Unavailable(
                f"Ollama at {self.url} sent a malformed response line during "
                f"{what}; check that LLM_OLLAMA_URL points at Ollama."
            )
        return Unavailable(f"Ollama failed {what}: {exc}")

    def _call(
        self, what: str, fn: Callable[[], T], *, idempotent: bool = True, retries: int | None = None
    ) -> T:
        """Run `fn`; retry when Ollama could not be reached (the request was never sent) and,
        for idempotent calls, after other transport failures. Translate what remains."""
        retries = self.retries if retries is None else retries
        for attempt in range(retries + 1):
            try:
                return fn()
            except (ConnectionError, httpx.ConnectError) as exc:
                failure: Exception = exc
            except httpx.TransportError as exc:
                if not idempotent:
                    raise self._error(exc, what) from exc
                failure = exc
            except (ResponseError, ValueError) as exc:
                raise self._error(exc, what) from exc
            if attempt < retries:
                log.warning("Ollama at %s: %s failed (%s); retrying", self.url, what, failure)
                time.sleep(self.backoff * 2**attempt)
        raise self._error(failure, what) from failure

    # -- import -------------------------------------------------------------------------

    def _digest(self, path: Path) -> str:
        stat = path.stat()
        key = (path, stat.st_size, stat.st_mtime_ns)
        if key not in self._digests:
            sha = hashlib.sha256()
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    sha.update(block)
            self._digests[key] = f"sha256:{sha.hexdigest()}"
        return self._digests[key]

    def _upload(self, path: Path, owner: str) -> str:
        """Make sure Ollama has `path` as a blob; return its digest."""
        if not path.is_file():
            raise Unavailable(
                f"Model file {path.name} for {owner!r} is missing; re-provision the model."
            )
        digest = self._digest(path)
        assert _DIGEST_RE.fullmatch(digest)

        def exists() -> bool:
            try:
                self._client._request_raw("HEAD", f"/api/blobs/{digest}")  # no public HEAD call
                return True
            except ResponseError as exc:
                if exc.status_code == 404:
                    return False
                raise

        def send() -> None:
            # The client's create_blob would hash the file a second time; Ollama checks ours.
            with open(path, "rb") as f:
                try:
                    self._client._request_raw("POST", f"/api/blobs/{digest}", content=f)
                except ResponseError as exc:
                    if exc.status_code != 400:
                        raise
                    self._digests.clear()
                    raise Unavailable(
                        f"Ollama rejected {path.name} for {owner!r}: "
                        f"{_scrub(str(exc.error))}. The file changed after it was hashed; "
                        "retry when nothing is writing it."
                    ) from exc

        if not self._call(f"checking blob {path.name}", exists):
            log.info("uploading %s to Ollama as %s", path, digest)
            self._call(f"uploading {path.name}", send)
        return digest

    def _create(self, name: str, **spec: Any) -> None:
        what = f"creating model {name!r}"

        def create() -> str | None:
            status = None
            try:
                for progress in self._client.create(ollama_name(name), stream=True, **spec):
                    status = progress.status
                    log.debug("ollama create %s: %s", name, status)
            except ResponseError as exc:
                if exc.status_code != -1:
                    raise
                # An error line after the 200: Ollama could not use what we sent.
                raise InvalidInput(
                    f"Ollama could not finish {what}: {_scrub(str(exc.error))}"
                ) from exc
            return status

        status = self._call(what, create)
        if status != "success":
            raise Unavailable(
                f"Ollama's answer to {what} ended without success "
                f"(last status {status!r}); retry, or check Ollama's log."
            )

    def _has(self, name: str) -> bool:
        models = self._call("listing models", self._client.list).models
        return ollama_name(name) in {m.model for m in models}

    def _import_lock(self) -> AbstractContextManager[bool]:
        """One import at a time, across replicas too (api/db/locks.py): bases are shared by
        variants, and two replicas creating one base would upload it twice."""
        return db_lock(self._settings, "ollama-import")

    def register(self, model: ServedModel) -> None:
        if model.template is not None and not _GO_TEMPLATE_RE.search(model.template):
            raise InvalidInput(
                "Ollama chat templates are Go templates (`{{ .System }}`, `{{ range .Messages "
                "}}`); this template looks like Jinja, which only the llamacpp backend uses."
            )
        if model.ollama_base is not None:
            self._register_on_library(model)
            return
        assert model.gguf_path is not None
        base_name = model.base_name
        with self._import_lock():
            spec: dict[str, Any] = {}
            if base_name is not None and base_name != model.name:
                if not self._has(base_name):
                    self._create(
                        base_name,
                        files={model.gguf_path.name: self._upload(model.gguf_path, base_name)},
                    )
                spec["from_"] = ollama_name(base_name)
            else:
                spec["files"] = {model.gguf_path.name: self._upload(model.gguf_path, model.name)}
            if model.adapter_path is not None:
                spec["adapters"] = {
                    model.adapter_path.name: self._upload(model.adapter_path, model.name)
                }
            self._create(
                model.name,
                system=model.system_prompt,
                template=model.template,
                parameters=ollama_options(model.options) or None,
                **spec,
            )

    def _register_on_library(self, model: ServedModel) -> None:
        """A library base needs nothing; a variant of one is created `from` it."""
        if _is_library_base(model):
            return
        with self._import_lock():  # (no adapters here: fine-tuning refuses library bases)
            self._create(
                model.name,
                from_=model.ollama_base,
                system=model.system_prompt,
                template=model.template,
                parameters=ollama_options(model.options) or None,
            )

    def unregister(self, name: str) -> None:
        def delete() -> None:
            try:
                self._client.delete(ollama_name(name))
            except ResponseError as exc:
                if exc.status_code != 404:  # unknown names are ignored
                    raise

        self._call(f"deleting model {name!r}", delete)

    # -- chat ---------------------------------------------------------------------------

    def chat(
        self, model: ServedModel, messages: list[dict[str, str]], options: dict[str, Any]
    ) -> Iterator[Chunk]:
        sent = {"num_ctx": self.context_length, **ollama_options(options)}
        return self._chunks(model, messages, sent)

    def _open(
        self, model: ServedModel, messages: list[dict[str, str]], options: dict[str, Any]
    ) -> Iterator[Any]:
        """Start the stream and read its first line (so a missing model shows up here)."""

        def start() -> Iterator[Any]:
            parts = self._client.chat(
                model=_target(model), messages=messages, options=options, stream=True
            )
            first = next(parts, None)
            return iter(()) if first is None else chain([first], parts)

        what = f"chat with {model.name!r}"
        try:
            return self._call(what, start, idempotent=False)
        except AppError as exc:
            if not isinstance(exc.__cause__, ResponseError) or exc.__cause__.status_code != 404:
                raise
        if _is_library_base(model):
            raise Unavailable(
                f"Ollama no longer has {model.ollama_base!r}; pull it again "
                f"(`ollama pull {model.ollama_base}`) or pick another model."
            )
        log.info("Ollama has no %s yet: importing it", ollama_name(model.name))
        self.register(model)
        return self._call(what, start, idempotent=False)

    def _chunks(
        self, model: ServedModel, messages: list[dict[str, str]], options: dict[str, Any]
    ) -> Iterator[Chunk]:
        what = f"chat with {model.name!r}"
        parts = self._open(model, messages, options)
        while True:
            try:
                part = next(parts, None)
            except (ResponseError, ValueError, httpx.TransportError) as exc:
                raise self._error(exc, what) from exc
            if part is None:
                raise Unavailable(
                    f"Ollama's reply for {model.name!r} ended before its final "
                    "line; the Ollama server may have stopped. Retry."
                )
            text = part.message.content or ""
            if part.done:
                yield Chunk(
                    text=text,
                    finish_reason=part.done_reason or "stop",
                    prompt_tokens=part.prompt_eval_count,
                    completion_tokens=part.eval_count,
                )
                return
            if text:
                yield Chunk(text=text)

    # -- library and memory -------------------------------------------------------------

    def library_models(self) -> list[LibraryModel]:
        return library_models(self._call("listing models", self._client.list).models)

    def unload_all(self) -> list[str]:
        """Unload what Ollama has in memory; raises Unavailable when it cannot be asked."""
        loaded = [
            m.model for m in self._call("listing loaded models", self._client.ps).models if m.model
        ]
        unloaded = []
        for name in loaded:
            try:
                self._call(
                    f"unloading {name!r}",
                    lambda name=name: self._client.generate(model=name, keep_alive=0),  # type: ignore[misc]
                )
            except AppError as exc:
                if (
                    not isinstance(exc.__cause__, ResponseError) or exc.__cause__.status_code != 404
                ):  # 404: it went away meanwhile
                    raise
            unloaded.append(name)
        return unloaded

    # -- status -------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        try:
            models = self._call("listing models", self._client.list, retries=0).models
        except AppError as exc:
            return {"ollama_url": self.url, "reachable": False, "detail": exc.detail}
        names = sorted(n for n in (platform_name(m.model or "") for m in models) if n)
        return {"ollama_url": self.url, "reachable": True, "models": names}

    def close(self) -> None:
        self._client.close()
