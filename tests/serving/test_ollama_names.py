"""Names of Ollama library models as platform base names (api/serving/ollama_names.py)."""

import logging
from types import SimpleNamespace

import pytest

from api.names import is_valid_name
from api.serving.ollama_names import library_models, library_name


@pytest.mark.parametrize(
    "ollama, ours",
    [
        ("llama3.2:3b", "llama3.2-3b"),
        ("llama3.2:latest", "llama3.2"),
        ("llama3.2", "llama3.2"),
        ("library/mistral:latest", "mistral"),
        ("registry.ollama.ai/library/qwen2.5:7b-instruct-q4_K_M", "qwen2.5-7b-instruct-q4_k_m"),
        ("someone/Custom_Model:v1", "someone.custom_model-v1"),
        (
            "hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M",
            "hf.co.bartowski.llama-3.2-1b-instruct-gguf-q4_k_m",
        ),
        ("localhost:5000/team/model:latest", "localhost-5000.team.model"),
    ],
)
def test_library_names_follow_our_rules(ollama, ours):
    assert library_name(ollama) == ours
    assert is_valid_name(ours)


@pytest.mark.parametrize(
    "ollama",
    [
        "llmp/hr-bot:latest",  # ours: listed as the variant, never as a base too
        "hf.co/someone/" + "a" * 60 + ":q4_k_m",  # longer than 63 characters
    ],
)
def test_our_own_models_and_unfit_names_are_not_bases(ollama):
    assert library_name(ollama) is None


def _entry(model, family="llama"):
    return SimpleNamespace(
        model=model,
        modified_at="2026-01-02T03:04:05Z",
        details=SimpleNamespace(family=family, parameter_size="3.2B", quantization_level="Q4_K_M"),
    )


def test_names_two_models_would_share_are_left_out_and_logged(caplog):
    caplog.set_level(logging.WARNING)
    found = library_models(
        [
            _entry("qwen:7b"),
            _entry("qwen-7b:latest"),
            _entry("gemma3:1b"),
            _entry("llmp/pirate:latest"),
            _entry("x" * 70),
        ]
    )
    assert [(m.name, m.ollama_model) for m in found] == [("gemma3-1b", "gemma3:1b")]
    assert (
        "Ollama models ['qwen-7b:latest', 'qwen:7b'] would all be the base 'qwen-7b'" in caplog.text
    )
    assert f"Ollama model {'x' * 70!r} is not offered as a base" in caplog.text


def test_a_listed_base_keeps_its_ollama_name_and_details():
    [model] = library_models([_entry("Llama3.2:3B", family="llama")])
    assert (model.name, model.ollama_model) == ("llama3.2-3b", "Llama3.2:3B")
    assert (model.family, model.parameter_size, model.quantization) == ("llama", "3.2B", "Q4_K_M")
    assert model.modified_at == "2026-01-02T03:04:05Z"
