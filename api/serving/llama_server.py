"""Backend `llamaserver`: llama.cpp's own `llama-server`, one child process per loaded GGUF.

Each GGUF that a request needs gets a `llama-server` child (api/serving/llama_children.py)
on a loopback port, with `--parallel` slots (continuous batching) and prompt caching; at
most `max_loaded_models` children run, the least recently used one is stopped first. A
variant with a LoRA adapter is served by its base's child: the base's child loads every
adapter it has been asked for (`--lora ... --lora-init-without-apply`) and each request
chooses its adapter with the `lora` field (scale 1 for its own, 0 for the others). A child
that does not yet have a requested adapter is restarted with it.

The prompt is rendered with the GGUF's chat template by the child (/apply-template), or
with a variant's own Jinja template here, then completed by /completion (streamed).

Crashes. A child that dies during a reply ends that reply with Unavailable (503 with
`Retry-After` before the first chunk; an error event after it, api/chat/service.py); the
next request starts a new child, after a back-off that doubles with each consecutive
failure. A child that fails to load `MAX_LOAD_FAILURES` times in a row makes its model
unavailable (the reason in /health and /listModels) until its GGUF file changes.

Determinism. With a `seed` (not -1) the prompt is evaluated from scratch (`cache_prompt`
off for that request), so its logits do not depend on what a slot held before; the reply
is reproducible while the model's child is serving that request alone (llama.cpp batches
concurrent requests together, and batch size can change the last bits of the logits).
"""

import json
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from jinja2.exceptions import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from api.config import Settings
from api.errors import AppError, InvalidInput, Unavailable
from api.serving.base import Chunk, LibraryModel, ServedModel
from api.serving.cpu import CpuInfo, choose_extra_buffers, host_cpu
from api.serving.llama_children import (
    Child,
    ChildLock,
    ChildSpec,
    Spawner,
    StartFailed,
    start_child,
)
from api.serving.scrub import scrub_paths

log = logging.getLogger(__name__)

MAX_LOAD_FAILURES = 3
BACKOFF_CAP_S = 30
# llama-cpp-python's defaults for a chat completion (the embedded backend's), where
# llama-server's differ: the same request samples the same way on both backends.
DEFAULTS = {"temperature": 0.2, "top_p": 0.95, "top_k": 40, "min_p": 0.05, "repeat_penalty": 1.0}
SAMPLING = ("temperature", "top_p", "top_k", "repeat_penalty", "stop", "seed")


def default_parallel() -> int:
    return max(1, min(4, os.cpu_count() or 1))


@dataclass
class _Model:
    """What this backend knows about one GGUF: its child (when running), the adapters its
    variants need, and its failures."""

    gguf: Path
    adapters: list[Path] = field(default_factory=list)
    child: Child | None = None
    in_flight: int = 0
    failures: int = 0  # consecutive failures (load or crash) since the last good reply
    load_failures: int = 0  # consecutive failed loads
    retry_at: float = 0.0
    reason: str | None = None  # why it is unavailable (after MAX_LOAD_FAILURES)
    file_stamp: tuple[int, int] | None = None
    props: dict[str, Any] = field(default_factory=dict)


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


class LlamaServer:
    def __init__(self, settings: Settings, cpu: CpuInfo | None = None):
        self.settings = settings
        self.binary = settings.llama_server_path
        self.parallel = settings.parallel or default_parallel()
        self.extra_buffers = choose_extra_buffers(
            settings.llamacpp_extra_buffers, cpu or host_cpu()
        )
        self.log_dir = settings.data_dir / "logs" / "llama-server"
        self._models: OrderedDict[Path, _Model] = OrderedDict()  # LRU order of use
        self._lock = threading.Lock()  # guards _models and the fields of each _Model
        self._starting = ChildLock()
        self._spawner = Spawner()
        self._http = httpx.Client(timeout=httpx.Timeout(settings.ollama_timeout, connect=5.0))
        self._templates: dict[str, Any] = {}
        self._own: dict[str, Path] = {}  # models with a GGUF of their own (merged exports)

    # -- children -----------------------------------------------------------------------

    def _spec(self, gguf: Path, adapters: list[Path]) -> ChildSpec:
        return ChildSpec(
            binary=self.binary,
            gguf=gguf,
            adapters=tuple(adapters),
            context_length=self.settings.context_length,
            parallel=self.parallel,
            threads=self.settings.threads or os.cpu_count() or 1,
            extra_buffers=self.extra_buffers.enabled,
        )

    def _entry(self, gguf: Path) -> _Model:
        """The record for `gguf` (under self._lock); a changed file forgets old failures."""
        entry = self._models.get(gguf)
        stamp = _stamp(gguf)
        if entry is None:
            entry = self._models[gguf] = _Model(gguf=gguf, file_stamp=stamp)
        elif entry.file_stamp != stamp:
            entry.file_stamp = stamp
            entry.failures = entry.load_failures = 0
            entry.reason, entry.retry_at = None, 0.0
        return entry

    def _acquire(self, model: ServedModel) -> tuple[_Model, Child]:
        """A healthy child serving `model`'s GGUF (and adapter); counts the request in."""
        assert model.gguf_path is not None
        gguf, adapter = model.gguf_path, model.adapter_path
        if not os.access(self.binary, os.X_OK):
            raise Unavailable(
                f"llama-server is missing ({self.binary.name} is not an executable file): "
                "run `make setup` (scripts/build_llamacpp.sh builds it into llama.cpp/bin/), "
                "or set LLM_LLAMA_SERVER_PATH."
            )
        for path in filter(None, (gguf, adapter)):
            if not path.is_file():
                raise Unavailable(
                    f"Model file {path.name} for {model.name!r} is missing; re-provision the model."
                )
        with self._starting(gguf):
            with self._lock:
                entry = self._entry(gguf)
                self._models.move_to_end(gguf)
                if adapter is not None and adapter not in entry.adapters:
                    entry.adapters.append(adapter)
                if model.base_name is None:  # its own GGUF: stopped when it is deleted
                    self._own[model.name] = gguf
                child = entry.child
                if (
                    child is not None
                    and child.alive()
                    and (adapter is None or adapter in child.spec.adapters)
                ):
                    entry.in_flight += 1
                    return entry, child
                if entry.reason is not None:
                    raise Unavailable(entry.reason)
                wait = entry.retry_at - time.monotonic()
                if wait > 0:
                    raise Unavailable(
                        f"The llama-server for {model.name!r} failed {entry.failures} time(s) "
                        f"in a row; the next start is in {wait:.0f} s. Retry then.",
                        retry_after=max(1, round(wait)),
                    )
                spec = self._spec(gguf, entry.adapters)
                entry.child = None
            if child is not None:
                child.stop()  # dead, or without an adapter now needed
            self._evict(keep=gguf)
            log_path = self.log_dir / f"{gguf.parent.name}-{gguf.stem}.log"
            try:
                child = start_child(
                    spec, self._spawner, log_path, self.settings.llama_server_start_timeout
                )
            except StartFailed as exc:
                raise self._load_failed(entry, model, str(exc)) from exc
            props = self._get_props(child)
            with self._lock:
                entry.child, entry.props = child, props
                entry.load_failures = 0
                entry.in_flight += 1
                return entry, child

    def _get_props(self, child: Child) -> dict[str, Any]:
        try:
            return dict(self._http.get(f"{child.url}/props", timeout=10).json())
        except (httpx.HTTPError, ValueError):
            return {}

    def _load_failed(self, entry: _Model, model: ServedModel, why: str) -> Unavailable:
        with self._lock:
            entry.load_failures += 1
            self._failed(entry)
            if entry.load_failures >= MAX_LOAD_FAILURES:
                entry.reason = (
                    f"{model.name!r} is unavailable: llama-server failed to load "
                    f"{entry.gguf.name} {entry.load_failures} times in a row. Last failure: "
                    f"{why}. Replace the model file (re-provision or re-export) to try again."
                )
                return Unavailable(entry.reason)
            return Unavailable(
                f"Could not load {model.name!r}: {why}",
                retry_after=max(1, round(entry.retry_at - time.monotonic())),
            )

    def _failed(self, entry: _Model) -> None:
        """Count a failure and set the back-off (under self._lock)."""
        entry.failures += 1
        entry.retry_at = time.monotonic() + min(BACKOFF_CAP_S, 2 ** (entry.failures - 1) - 1)

    def _evict(self, keep: Path) -> None:
        """Stop least recently used children beyond max_loaded_models (idle ones first)."""
        with self._lock:
            running = [e for e in self._models.values() if e.child is not None and e.gguf != keep]
            excess = len(running) + 1 - self.settings.max_loaded_models
            victims = sorted(running, key=lambda e: e.in_flight > 0)[: max(0, excess)]
            children = []
            for entry in victims:
                children.append(entry.child)
                entry.child = None
        for child in children:
            if child is not None:
                log.info("stopping llama-server for %s (least recently used)", child.spec.gguf)
                child.stop()

    def _lost(self, entry: _Model, child: Child, model: ServedModel, exc: Exception) -> AppError:
        """The connection to a child broke: it crashed (restart later) or it is stuck."""
        reason = child.exit_reason(wait=2.0)
        with self._lock:
            retired = entry.child is not child
        if retired:  # stopped on purpose: LRU, unload_all, a new adapter, a deletion
            return Unavailable(
                f"The llama-server serving {model.name!r} was stopped during the reply (to "
                "make room for another model, to load a new adapter, or to free memory). Retry.",
                retry_after=1,
            )
        if child.alive():
            return Unavailable(
                f"Lost the connection to the llama-server serving {model.name!r} "
                f"({type(exc).__name__}); retry.",
                retry_after=1,
            )
        log.error("llama-server for %s %s; log: %s", entry.gguf, reason, child.log_path)
        with self._lock:
            entry.child = None
            self._failed(entry)
        return Unavailable(
            f"The llama-server serving {model.name!r} stopped ({reason}) during the reply; "
            f"it is restarted on the next request. Retry.",
            retry_after=max(1, round(entry.retry_at - time.monotonic())),
        )

    # -- chat ---------------------------------------------------------------------------

    def chat(
        self, model: ServedModel, messages: list[dict[str, str]], options: dict[str, Any]
    ) -> Iterator[Chunk]:
        if model.gguf_path is None:
            raise Unavailable(_library_only(model))
        return self._stream(model, messages, options)

    def _stream(
        self, model: ServedModel, messages: list[dict[str, str]], options: dict[str, Any]
    ) -> Iterator[Chunk]:
        entry, child = self._acquire(model)
        try:
            body = self._body(entry, child, model, messages, options)
            with self._http.stream("POST", f"{child.url}/completion", json=body) as reply:
                if reply.status_code != 200:
                    raise self._refused(reply, model)
                for line in reply.iter_lines():
                    if not line.startswith("data: "):
                        continue
                    part = json.loads(line[6:])
                    if "error" in part:
                        raise Unavailable(
                            f"llama-server failed the reply for {model.name!r}: "
                            f"{part['error'].get('message', part['error'])}"
                        )
                    if not part.get("stop"):
                        if part.get("content"):
                            yield Chunk(text=part["content"])
                        continue
                    with self._lock:
                        entry.failures = 0
                    yield Chunk(
                        text=part.get("content") or "",
                        finish_reason="length" if part.get("stop_type") == "limit" else "stop",
                        prompt_tokens=part.get("tokens_evaluated"),
                        completion_tokens=part.get("tokens_predicted"),
                    )
                    return
            raise self._lost(entry, child, model, EOFError("reply ended early"))
        except httpx.TransportError as exc:
            raise self._lost(entry, child, model, exc) from exc
        finally:
            with self._lock:
                entry.in_flight -= 1

    def _body(
        self,
        entry: _Model,
        child: Child,
        model: ServedModel,
        messages: list[dict[str, str]],
        options: dict[str, Any],
    ) -> dict[str, Any]:
        body: dict[str, Any] = {**DEFAULTS, **{k: options[k] for k in SAMPLING if k in options}}
        seeded = body.get("seed", -1) != -1
        body.update(
            prompt=self._prompt(entry, child, model, messages),
            stream=True,
            n_predict=options.get("max_tokens", -1),
            cache_prompt=not seeded,
        )
        if child.spec.adapters:
            body["lora"] = [
                {"id": i, "scale": 1.0 if a == model.adapter_path else 0.0}
                for i, a in enumerate(child.spec.adapters)
            ]
        return body

    def _prompt(
        self, entry: _Model, child: Child, model: ServedModel, messages: list[dict[str, str]]
    ) -> str:
        if model.template is not None:
            try:
                return self._template(model.template).render(
                    messages=messages,
                    add_generation_prompt=True,
                    bos_token=entry.props.get("bos_token", ""),
                    eos_token=entry.props.get("eos_token", ""),
                )
            except Exception as exc:  # a Jinja error in the variant's template
                raise InvalidInput(
                    f"The chat template of {model.name!r} failed to render: {exc}. "
                    "Fix the template (recreate the model)."
                ) from exc
        reply = self._http.post(f"{child.url}/apply-template", json={"messages": messages})
        if reply.status_code != 200:
            raise self._refused(reply, model)
        return str(reply.json()["prompt"])

    def _template(self, source: str) -> Any:
        if source not in self._templates:
            env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
            env.globals["raise_exception"] = _raise_exception  # as Transformers provides it
            self._templates[source] = env.from_string(source)
        return self._templates[source]

    def _refused(self, reply: httpx.Response, model: ServedModel) -> AppError:
        reply.read()
        try:
            message = scrub_paths(str(reply.json()["error"]["message"]))
        except (ValueError, KeyError, TypeError):
            message = reply.text[:300]
        if reply.status_code == 400 and "context" in message:
            return InvalidInput(
                f"The prompt does not fit the context window of "
                f"{self.settings.context_length} tokens: {message}. Shorten the prompt."
            )
        if reply.status_code == 503:
            return Unavailable(f"llama-server for {model.name!r} is busy: {message}", 1)
        return Unavailable(
            f"llama-server answered HTTP {reply.status_code} for {model.name!r}: {message}"
        )

    # -- registry -----------------------------------------------------------------------

    def register(self, model: ServedModel) -> None:
        if model.gguf_path is None:
            raise Unavailable(_library_only(model))
        for path in filter(None, (model.gguf_path, model.adapter_path)):
            if not path.is_file():
                raise Unavailable(f"Model file {path} is missing; re-provision the base model.")
        if model.base_name is None:
            with self._lock:
                self._own[model.name] = model.gguf_path
        if model.adapter_path is not None:
            with self._lock:
                entry = self._entry(model.gguf_path)
                if model.adapter_path not in entry.adapters:
                    entry.adapters.append(model.adapter_path)  # loaded at the next start

    def unregister(self, name: str) -> None:
        """Stop the child of a model with a GGUF of its own; a variant of a base shares the
        base's child (its adapter stays loaded there until the child restarts)."""
        with self._lock:
            gguf = self._own.pop(name, None)
            if gguf is None or gguf in self._own.values():
                return
            entry = self._models.pop(gguf, None)
            child = entry.child if entry is not None else None
            if entry is not None:
                entry.child = None
        if child is not None:
            child.stop()

    def library_models(self) -> list[LibraryModel]:
        return []

    def unload_all(self) -> list[str]:
        """Stop every child; the next request starts its model's child again."""
        with self._lock:
            running = [(e.gguf, e.child) for e in self._models.values() if e.child is not None]
            for entry in self._models.values():
                entry.child = None
        for _, child in running:
            if child is not None:
                child.stop()
        return [_label(g) for g, _ in running]

    def unavailable(self) -> dict[Path, str]:
        """GGUF files that failed to load too often, with the reason."""
        with self._lock:
            return {e.gguf: e.reason for e in self._models.values() if e.reason is not None}

    def health(self) -> dict[str, Any]:
        with self._lock:
            children = [
                {
                    "model": _label(e.gguf),
                    "pid": e.child.proc.pid,
                    "port": e.child.port,
                    "adapters": len(e.child.spec.adapters),
                    "in_flight": e.in_flight,
                }
                for e in self._models.values()
                if e.child is not None and e.child.alive()
            ]
            unavailable = {_label(e.gguf): e.reason for e in self._models.values() if e.reason}
        return {
            "engine": "llama-server",
            "loaded": [c["model"] for c in children],
            "children": children,
            "max_loaded": self.settings.max_loaded_models,
            "parallel": self.parallel,
            "extra_buffers": self.extra_buffers.as_dict(),
            "unavailable": unavailable,
        }

    def close(self) -> None:
        self.unload_all()
        self._spawner.close()
        self._http.close()


def _raise_exception(message: str) -> None:
    raise TemplateError(message)


def _label(gguf: Path) -> str:
    """A model's name in /health: its directory for a provisioned base."""
    return gguf.parent.name if gguf.name == "model.gguf" else gguf.stem


def _library_only(model: ServedModel) -> str:
    return (
        f"{model.name!r} is served from Ollama's library ({model.ollama_base!r}); "
        "set LLM_BACKEND=ollama to use it."
    )
