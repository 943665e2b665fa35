"""The one place that opens a GGUF with llama-cpp-python, honouring the host's extra-buffer choice.

`Llama(...)` has no argument for llama.cpp's `use_extra_bufts` model parameter; it builds
its parameters from `llama_model_default_params()` and loads the model straight away.
So, for the length of one construction (under a lock, so concurrent loads cannot see each
other's value), that function is wrapped to return defaults with our choice set. The
parameters the model was loaded with stay readable as `llm.model_params`.
"""

import threading
from pathlib import Path
from typing import Any

import llama_cpp.llama_cpp as llama_lib
from llama_cpp import Llama

from api.serving.cpu import ExtraBuffersChoice, choose_extra_buffers, host_cpu

_construct = threading.Lock()


def open_llama(
    model_path: Path | str, *, extra_buffers: ExtraBuffersChoice | None = None, **kwargs: Any
) -> Llama:
    """`Llama(model_path, **kwargs)` with extra buffer types as chosen (default: `auto`)."""
    choice = extra_buffers or choose_extra_buffers("auto", host_cpu())
    with _construct:
        original = llama_lib.llama_model_default_params

        def defaults() -> llama_lib.llama_model_params:
            params = original()
            params.use_extra_bufts = choice.enabled
            return params

        llama_lib.llama_model_default_params = defaults
        try:
            return Llama(model_path=str(model_path), **kwargs)
        finally:
            llama_lib.llama_model_default_params = original
