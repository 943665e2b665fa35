"""Which base architectures Ollama can apply a LoRA adapter to (`export=adapter`).

An adapter export is served as an Ollama model created `from` the base with `adapters`
(a GGUF LoRA). Ollama 0.20.x (the version docker-compose.yml pins) runs a model either in
its llama.cpp-based runner, which applies GGUF LoRA adapters, or in its own engine, which
refuses them when the model loads ("loras are not yet implemented",
runner/ollamarunner/runner.go). It uses its own engine for every architecture in
`OllamaEngineRequired` (fs/ggml/ggml.go, v0.20.7), copied below as the GGUF
`general.architecture` values. Ollama's docs/modelfile.md lists the families it supports for
*safetensors* adapters (Llama, Mistral, Gemma 1/2); we upload GGUF adapters, for which the
engine split above is what decides. Ollama 0.30 serves every GGUF model through llama-server
with `--lora` (ollama#16031), which lifts this limit: revisit the list when the pin moves.
"""

from pathlib import Path

OLLAMA_VERSION = "0.20.7"  # the Ollama the list below was read from
NO_ADAPTER_ARCHITECTURES = frozenset(
    {
        "bert",
        "deepseek2",
        "deepseekocr",
        "gemma3",
        "gemma3n",
        "gemma4",
        "gptoss",
        "gpt-oss",
        "llama4",
        "mistral3",
        "mllama",
        "nemotron_h",
        "nemotron_h_moe",
        "nomic-bert",
        "olmo3",
        "qwen25vl",
        "qwen3",
        "qwen3moe",
        "qwen35",
        "qwen35moe",
        "qwen3next",
        "qwen3vl",
        "qwen3vlmoe",
        "glm4moelite",
        "glmocr",
        "lfm2",
        "lfm2moe",
    }
)


def gguf_architecture(path: Path) -> str | None:
    """`general.architecture` of a GGUF file, or None when it cannot be read."""
    from gguf import GGUFReader  # numpy-backed; imported only when an adapter export is asked

    try:
        field = GGUFReader(path).get_field("general.architecture")
        value = field.contents() if field is not None else None
    except (OSError, ValueError, KeyError, IndexError):  # not a GGUF, or a truncated one
        return None
    return value if isinstance(value, str) else None


def adapter_problem(base_name: str, gguf_path: Path) -> str | None:
    """Why Ollama cannot serve a LoRA on this base (None when it can, or cannot be told)."""
    arch = gguf_architecture(gguf_path)
    if arch not in NO_ADAPTER_ARCHITECTURES:
        return None
    return (
        f"export=adapter cannot be served by Ollama for base {base_name!r}: its "
        f"architecture {arch!r} runs on Ollama's own engine, which does not apply LoRA "
        f"adapters (Ollama {OLLAMA_VERSION}). Use export=merged (the adapter merged into "
        "the weights), or the llamacpp backend."
    )
