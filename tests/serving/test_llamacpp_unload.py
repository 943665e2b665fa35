"""The embedded backend's unload_all: the real SmolLM2 GGUF, loaded and dropped."""

from api.models.catalog import BaseCatalog
from api.models.service import served_model
from api.serving.llamacpp import LlamaCppServer


def test_unload_all_drops_loaded_models_and_the_next_chat_loads_again(settings):
    base = BaseCatalog(settings.models_dir).get(settings.default_base_model)
    server = LlamaCppServer(settings)
    model = served_model(base, None)
    ask = [{"role": "user", "content": "Hi"}]
    list(server.chat(model, ask, {"max_tokens": 2, "seed": 0}))
    assert server.health()["loaded"] == [settings.default_base_model]

    assert server.unload_all() == [settings.default_base_model]
    assert server.health()["loaded"] == []
    assert server.unload_all() == []

    chunks = list(server.chat(model, ask, {"max_tokens": 2, "seed": 0}))
    assert chunks[-1].finish_reason in ("stop", "length")
    assert server.health()["loaded"] == [settings.default_base_model]
    server.close()
