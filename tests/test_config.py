"""Settings come from LLM_* environment variables and are validated."""

import pytest
from pydantic import ValidationError

from api.config import Settings


def test_environment_variables_are_read(monkeypatch, tmp_path):
    monkeypatch.setenv("LLM_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("LLM_CONTEXT_LENGTH", "4096")
    s = Settings()
    assert s.data_dir == tmp_path.resolve()
    assert s.models_dir == tmp_path.resolve() / "models"
    assert s.context_length == 4096
    assert s.api_key is None
    assert s.require_cuda is False


def test_require_cuda_is_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("LLM_REQUIRE_CUDA", "true")
    assert Settings().require_cuda is True


@pytest.mark.parametrize(
    "var, value",
    [
        ("LLM_CONTEXT_LENGTH", "10"),
        ("LLM_MAX_LOADED_MODELS", "0"),
        ("LLM_BACKEND", "tensorflow"),
        ("LLM_THREADS", "many"),
        ("LLM_REQUIRE_CUDA", "perhaps"),
    ],
)
def test_invalid_values_are_refused(monkeypatch, var, value):
    monkeypatch.setenv(var, value)
    with pytest.raises(ValidationError):
        Settings()
