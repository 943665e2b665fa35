"""Embedded backend: llama-cpp-python in this process, a bounded LRU of loaded GGUF models.

A llama.cpp context is not thread-safe, so each loaded model has a lock held for the
whole of one generation; requests for the same model queue behind it. Variants of one
base share the loaded weights: the system prompt and options are per request.
"""

import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from llama_cpp import Llama
from llama_cpp.llama_chat_format import Jinja2ChatFormatter

from api.config import Settings
from api.errors import InvalidInput, Unavailable
from api.serving.base import Chunk, LibraryModel, ServedModel
from api.serving.cpu import CpuInfo, choose_extra_buffers, host_cpu
from api.serving.llama_model import open_llama

log = logging.getLogger(__name__)

_Key = tuple[Path, Path | None]


class _Loaded:
    def __init__(self, llm: Llama):
        self.llm = llm
        self.lock = threading.Lock()


class LlamaCppServer:
    def __init__(self, settings: Settings, cpu: CpuInfo | None = None):
        self.settings = settings
        self.extra_buffers = choose_extra_buffers(
            settings.llamacpp_extra_buffers, cpu or host_cpu()
        )
        log.info("llama.cpp extra buffer types %s", self.extra_buffers.reason)
        self._models: OrderedDict[_Key, _Loaded] = OrderedDict()
        self._pool_lock = threading.Lock()

    def _load(self, model: ServedModel) -> _Loaded:
        if model.gguf_path is None:
            raise Unavailable(_library_only(model))
        key: _Key = (model.gguf_path, model.adapter_path)
        with self._pool_lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
            for path in filter(None, key):
                if not path.is_file():
                    raise Unavailable(
                        f"Model file {path.name} for {model.name!r} is missing; "
                        "re-provision the model."
                    )
            log.info("loading %s (adapter %s)", model.gguf_path, model.adapter_path)
            try:
                llm = open_llama(
                    model.gguf_path,
                    extra_buffers=self.extra_buffers,
                    lora_path=str(model.adapter_path) if model.adapter_path else None,
                    n_ctx=self.settings.context_length,
                    n_threads=self.settings.threads or os.cpu_count(),
                    verbose=False,
                )
            except ValueError as exc:
                raise Unavailable(f"Could not load {model.name!r}: {exc}") from exc
            self._models[key] = loaded = _Loaded(llm)
            while len(self._models) > self.settings.max_loaded_models:
                self._models.popitem(last=False)  # in-flight generations keep their reference
            return loaded

    def _handler(self, llm: Llama, template: str | None) -> Any:
        if template is None:
            return None
        # special=True: control tokens such as <|im_end|> detokenize to "" otherwise, and an
        # empty stop string ends every reply before its first token
        eos = llm.detokenize([llm.token_eos()], special=True).decode(errors="ignore")
        bos = llm.detokenize([llm.token_bos()], special=True).decode(errors="ignore")
        return Jinja2ChatFormatter(template, eos_token=eos, bos_token=bos).to_chat_handler()

    def chat(
        self, model: ServedModel, messages: list[dict[str, str]], options: dict[str, Any]
    ) -> Iterator[Chunk]:
        loaded = self._load(model)
        return self._generate(loaded, model, messages, options)

    def _generate(
        self,
        loaded: _Loaded,
        model: ServedModel,
        messages: list[dict[str, str]],
        options: dict[str, Any],
    ) -> Iterator[Chunk]:
        llm = loaded.llm
        with loaded.lock:
            llm.chat_handler = self._handler(llm, model.template)
            # Evaluate every prompt from scratch: reusing the previous request's KV cache
            # changes logits slightly, so the same seed would not give the same reply.
            llm.reset()
            try:
                stream = llm.create_chat_completion(
                    messages=messages,  # type: ignore[arg-type]
                    stream=True,
                    **_sampling(options),
                )
                produced = 0
                for part in stream:
                    choice = part["choices"][0]  # type: ignore[index]
                    text = choice["delta"].get("content") or ""  # type: ignore[index, union-attr]
                    produced += bool(text)
                    finish = choice["finish_reason"]  # type: ignore[index]
                    if finish is None:
                        if text:
                            yield Chunk(text=text)  # type: ignore[arg-type]
                        continue
                    yield Chunk(
                        text=text,  # type: ignore[arg-type]
                        finish_reason=finish,
                        prompt_tokens=max(llm.n_tokens - produced, 0),
                        completion_tokens=produced,
                    )
            except ValueError as exc:
                if "context window" in str(exc):
                    raise InvalidInput(
                        f"The prompt does not fit the context window of "
                        f"{self.settings.context_length} tokens: {exc}. Shorten the prompt."
                    ) from exc
                raise
            finally:
                llm.chat_handler = None

    def register(self, model: ServedModel) -> None:
        if model.gguf_path is None:
            raise Unavailable(_library_only(model))
        for path in filter(None, (model.gguf_path, model.adapter_path)):
            if not path.is_file():
                raise Unavailable(f"Model file {path} is missing; re-provision the base model.")

    def unregister(self, name: str) -> None:
        """Nothing to do: variants share their base's loaded weights."""

    def library_models(self) -> list[LibraryModel]:
        """Only provisioned bases here: llama.cpp has no library of its own."""
        return []

    def unload_all(self) -> list[str]:
        """Drop the loaded models; a generation in flight keeps its reference and finishes,
        and the next request loads its model again."""
        with self._pool_lock:
            names = [str(k[0].parent.name) for k in self._models]
            self._models.clear()
        return names

    def health(self) -> dict[str, Any]:
        with self._pool_lock:
            loaded = [str(k[0].parent.name) for k in self._models]
        return {
            "loaded": loaded,
            "max_loaded": self.settings.max_loaded_models,
            "extra_buffers": self.extra_buffers.as_dict(),
        }

    def close(self) -> None:
        with self._pool_lock:
            for loaded in self._models.values():
                with loaded.lock:
                    loaded.llm.close()
            self._models.clear()


def _library_only(model: ServedModel) -> str:
    return (
        f"{model.name!r} is served from Ollama's library ({model.ollama_base!r}); "
        "set LLM_BACKEND=ollama to use it."
    )


def _sampling(options: dict[str, Any]) -> dict[str, Any]:
    """Our option names to llama-cpp-python's keyword arguments."""
    allowed = ("temperature", "top_p", "top_k", "repeat_penalty", "max_tokens", "stop", "seed")
    out = {k: options[k] for k in allowed if k in options}
    if out.get("seed") == -1:
        out.pop("seed")
    return out
