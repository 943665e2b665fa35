"""Contract tests: the Ollama backend against a protocol double of Ollama's HTTP API.

No Ollama server can run here (and none in CI), so these tests check that the backend
speaks Ollama's documented API correctly and survives its failure modes; see
tests/utils/ollama_double.py for what the double enforces.
"""

import hashlib
import threading
from pathlib import Path

import httpx
import pytest

from api.config import Settings
from api.errors import InvalidInput, Unavailable
from api.serving.base import ServedModel
from api.serving.ollama import ollama_name, ollama_options, platform_name
from tests.utils.net import free_port
from tests.utils.ollama_app import make_server
from tests.utils.ollama_double import make_base

GO_TEMPLATE = "{{ if .System }}<|system|>{{ .System }}{{ end }}<|user|>{{ .Prompt }}<|bot|>"


def sha(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def variant(base_gguf: Path, name: str = "pirate", **fields: object) -> ServedModel:
    # built on the base that make_base put there, as api/models/service.served_model says
    return ServedModel(name=name, gguf_path=base_gguf, base_name=base_gguf.parent.name, **fields)  # type: ignore[arg-type]


# -- names and options --------------------------------------------------------------------


def test_names_map_both_ways_and_foreign_models_are_ignored():
    assert ollama_name("hr-bot") == "llmp/hr-bot:latest"
    assert platform_name(ollama_name("smollm2-135m")) == "smollm2-135m"
    assert platform_name("llama3.2:latest") is None
    assert platform_name("llmp/x:q4") is None


def test_options_use_ollama_names_and_random_seed_is_left_out():
    assert ollama_options(
        {
            "max_tokens": 5,
            "temperature": 0.1,
            "top_k": 3,
            "seed": -1,
            "stop": ["\n"],
            "repeat_penalty": 1.1,
            "top_p": 0.9,
        }
    ) == {
        "num_predict": 5,
        "temperature": 0.1,
        "top_k": 3,
        "stop": ["\n"],
        "repeat_penalty": 1.1,
        "top_p": 0.9,
    }
    assert ollama_options({"seed": 7}) == {"seed": 7}


def test_settings_accept_the_ollama_backend_and_refuse_a_bad_url(tmp_path):
    s = Settings(data_dir=tmp_path, backend="ollama", ollama_url="http://ollama:11434")
    assert (s.backend, s.ollama_url) == ("ollama", "http://ollama:11434")
    with pytest.raises(ValueError, match="ollama_url"):
        Settings(data_dir=tmp_path, ollama_url="ollama:11434/../x")


# -- import: blobs and create --------------------------------------------------------------


def test_registering_a_base_uploads_its_gguf_by_digest_and_creates_it_from_files(
    server, double, base_gguf
):
    server.register(ServedModel(name="tiny", gguf_path=base_gguf))
    digest = sha(base_gguf)
    assert double.blob_sizes == {digest: base_gguf.stat().st_size}
    created = double.models["llmp/tiny:latest"]
    assert created["files"] == {"model.gguf": digest}
    assert "from" not in created and "system" not in created


def test_a_variant_is_created_from_its_base_with_system_template_and_parameters(
    server, double, base_gguf
):
    server.register(
        variant(
            base_gguf,
            system_prompt="Talk like a pirate.",
            template=GO_TEMPLATE,
            options={"temperature": 0.2, "max_tokens": 64, "seed": -1},
        )
    )
    assert double.models["llmp/tiny:latest"]["files"] == {"model.gguf": sha(base_gguf)}
    created = double.models["llmp/pirate:latest"]
    assert created["from"] == "llmp/tiny:latest"
    assert created["system"] == "Talk like a pirate."
    assert created["template"] == GO_TEMPLATE
    assert created["parameters"] == {"temperature": 0.2, "num_predict": 64}
    assert "files" not in created


def test_a_second_variant_reuses_the_imported_base_and_its_blob(server, double, base_gguf):
    server.register(variant(base_gguf, "one"))
    server.register(variant(base_gguf, "two"))
    assert len(double.calls("POST", f"/api/blobs/{sha(base_gguf)}")) == 1
    base_creates = [
        b for b in double.calls("POST", "/api/create") if b["model"] == "llmp/tiny:latest"
    ]
    assert len(base_creates) == 1
    assert {"llmp/one:latest", "llmp/two:latest"} <= set(double.models)


def test_an_adapter_is_uploaded_and_created_with_adapters_on_its_base(
    server, double, base_gguf, tmp_path
):
    adapter = tmp_path / "adapter.gguf"
    adapter.write_bytes(b"GGUF lora weights")
    server.register(variant(base_gguf, "tuned", adapter_path=adapter))
    created = double.models["llmp/tuned:latest"]
    assert created["from"] == "llmp/tiny:latest"
    assert created["adapters"] == {"adapter.gguf": sha(adapter)}
    assert sha(adapter) in double.blobs


def test_a_merged_gguf_is_created_from_its_own_files(server, double, base_gguf, tmp_path):
    merged = tmp_path / "exports" / "merged.gguf"
    merged.parent.mkdir()
    merged.write_bytes(b"GGUF merged fine-tune")
    server.register(ServedModel(name="merged", gguf_path=merged, system_prompt="s"))
    created = double.models["llmp/merged:latest"]
    assert created["files"] == {"merged.gguf": sha(merged)}
    assert "from" not in created
    assert "llmp/tiny:latest" not in double.models


def test_a_jinja_template_is_refused_before_anything_is_sent(server, double, base_gguf):
    with pytest.raises(InvalidInput, match="Go templates"):
        server.register(
            variant(base_gguf, template="{% for m in messages %}{{ m.content }}{% endfor %}")
        )
    assert double.requests == []


def test_a_missing_model_file_is_503_naming_it(server, double, models_dir):
    with pytest.raises(Unavailable, match="Model file gone.gguf for 'x' is missing"):
        server.register(ServedModel(name="x", gguf_path=models_dir / "gone.gguf"))


def test_the_double_rejects_a_blob_whose_digest_does_not_match(double):
    wrong = "sha256:" + "0" * 64
    r = httpx.post(f"{double.url}/api/blobs/{wrong}", content=b"GGUF data")
    assert r.status_code == 400
    assert r.json()["error"].startswith(f"digest mismatch, expected {wrong}")
    assert httpx.head(f"{double.url}/api/blobs/{wrong}").status_code == 404
    assert httpx.head(f"{double.url}/api/blobs/sha256:abc..etc").status_code == 400


def test_a_digest_mismatch_on_upload_is_reported(server, double, base_gguf):
    stat = base_gguf.stat()
    server._digests[(base_gguf, stat.st_size, stat.st_mtime_ns)] = "sha256:" + "1" * 64
    with pytest.raises(Unavailable) as info:
        server.register(ServedModel(name="tiny", gguf_path=base_gguf))
    assert info.value.detail.startswith(
        f"Ollama rejected model.gguf for 'tiny': digest mismatch, expected sha256:{'1' * 64}, "
        f"got {sha(base_gguf)}. The file changed after it was hashed;"
    )
    assert double.models == {} and double.blobs == {}
    server.register(ServedModel(name="tiny", gguf_path=base_gguf))  # hashed afresh: works
    assert "llmp/tiny:latest" in double.models


def test_an_error_line_in_the_create_stream_fails_the_create(server, double, models_dir):
    not_gguf = make_base(models_dir, "broken", content=b"PK\x03\x04 a zip, not a GGUF")
    with pytest.raises(InvalidInput) as info:
        server.register(variant(not_gguf, "v"))
    assert info.value.detail == (
        "Ollama could not finish creating model 'broken': invalid file magic"
    )
    assert double.models == {}


def test_the_double_reports_an_unknown_from_mid_stream(double):
    r = httpx.post(f"{double.url}/api/create", json={"model": "x", "from": "nope"})
    assert r.status_code == 200
    assert r.text.splitlines()[-1] == '{"error": "pull model manifest: model \'nope\' not found"}'
    r = httpx.post(f"{double.url}/api/create", json={"model": "x"})
    assert (r.status_code, r.json()) == (400, {"error": "neither 'from' or 'files' was specified"})


# -- list and delete ----------------------------------------------------------------------


def test_unregister_deletes_and_ignores_unknown_names(server, double, base_gguf):
    server.register(variant(base_gguf, "gone-soon"))
    assert server.health()["models"] == ["gone-soon", "tiny"]
    server.unregister("gone-soon")
    server.unregister("never-existed")
    assert "llmp/gone-soon:latest" not in double.models
    assert server.health() == {"ollama_url": double.url, "reachable": True, "models": ["tiny"]}


def test_health_lists_only_platform_models(server, double):
    double.models["llama3.2:latest"] = {"modified_at": "2026-01-01T00:00:00"}
    assert server.health()["models"] == []


# -- chat ---------------------------------------------------------------------------------


def test_chat_streams_chunks_with_counts_and_mapped_options(server, double, base_gguf):
    model = variant(base_gguf)
    server.register(model)
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi you"}]
    chunks = list(
        server.chat(
            model, messages, {"max_tokens": 10, "temperature": 0.0, "seed": -1, "stop": ["END"]}
        )
    )
    assert "".join(c.text for c in chunks) == "Ahoy there matey"
    assert [c.finish_reason for c in chunks] == [None, None, None, "stop"]
    assert (chunks[-1].prompt_tokens, chunks[-1].completion_tokens) == (4, 3)
    sent = double.calls("POST", "/api/chat")[-1]
    assert sent["model"] == "llmp/pirate:latest"
    assert sent["messages"] == messages
    assert sent["stream"] is True
    assert sent["options"] == {
        "num_ctx": 2048,
        "num_predict": 10,
        "temperature": 0.0,
        "stop": ["END"],
    }


def test_done_reason_length_becomes_finish_reason_length(server, double, base_gguf):
    model = variant(base_gguf)
    server.register(model)
    chunks = list(server.chat(model, [{"role": "user", "content": "x"}], {"max_tokens": 2}))
    assert "".join(c.text for c in chunks) == "Ahoy there "
    assert (chunks[-1].finish_reason, chunks[-1].completion_tokens) == ("length", 2)


def test_a_mid_stream_error_line_raises_after_the_text_so_far(server, double, base_gguf):
    model = variant(base_gguf)
    server.register(model)
    double.error_after = 2
    stream = server.chat(model, [{"role": "user", "content": "x"}], {})
    assert [next(stream).text, next(stream).text] == ["Ahoy ", "there "]
    with pytest.raises(Unavailable) as info:
        next(stream)
    assert info.value.detail == (
        "Ollama reported an error during chat with 'pirate': an error "
        "was encountered while running the model: unexpected EOF"
    )


@pytest.mark.parametrize(
    "knob, message",
    [
        ("cut_after", "Ollama's reply for 'pirate' ended before its final line"),
        ("garbage_after", "sent a malformed response line during chat with 'pirate'"),
    ],
)
def test_a_stream_that_breaks_off_or_is_not_ndjson_is_an_error(
    server, double, base_gguf, knob, message
):
    model = variant(base_gguf)
    server.register(model)
    setattr(double, knob, 1)
    with pytest.raises(Unavailable, match=message):
        list(server.chat(model, [{"role": "user", "content": "x"}], {}))


def test_chat_with_a_model_ollama_lacks_imports_it_once(server, double, base_gguf):
    model = variant(base_gguf, system_prompt="Arr.")
    chunks = list(server.chat(model, [{"role": "user", "content": "x"}], {}))
    assert chunks[-1].finish_reason == "stop"
    assert double.models["llmp/pirate:latest"]["system"] == "Arr."
    assert len(double.calls("POST", "/api/chat")) == 2


def test_ollama_busy_is_503_saying_retry_later(server, double, base_gguf):
    model = variant(base_gguf)
    server.register(model)
    double.busy = True
    with pytest.raises(Unavailable, match=r"is busy \(its queue is full\)"):
        list(server.chat(model, [{"role": "user", "content": "x"}], {}))


def test_a_slow_ollama_times_out_with_advice(double, base_gguf, tmp_path):
    server = make_server(double.url, tmp_path, ollama_timeout=0.3)
    model = variant(base_gguf)
    server.register(model)
    double.delay = 1.0
    with pytest.raises(Unavailable, match="did not answer within 0.3 s"):
        list(server.chat(model, [{"role": "user", "content": "x"}], {}))
    server.close()


# -- Ollama down --------------------------------------------------------------------------


def test_ollama_down_gives_503_naming_the_url_and_what_to_do(base_gguf, tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    server = make_server(url, tmp_path, ollama_retries=1)
    expected = (
        f"Ollama is not reachable at {url} (listing models). Start it (`docker compose "
        "up -d ollama`) or point LLM_OLLAMA_URL at a running Ollama server."
    )
    with pytest.raises(Unavailable) as info:
        server.register(variant(base_gguf))
    assert info.value.detail == expected
    with pytest.raises(Unavailable, match=f"not reachable at {url} \\(chat with 'pirate'\\)"):
        next(server.chat(variant(base_gguf), [{"role": "user", "content": "x"}], {}))
    with pytest.raises(Unavailable, match="deleting model 'pirate'"):
        server.unregister("pirate")
    assert server.health() == {"ollama_url": url, "reachable": False, "detail": expected}


def test_connection_failures_are_retried_until_ollama_is_back(double, base_gguf, tmp_path):
    server = make_server(double.url, tmp_path, ollama_retries=4)
    double.stop()
    threading.Timer(0.3, double.start).start()
    server.register(ServedModel(name="tiny", gguf_path=base_gguf))  # backoff 0.05+0.1+0.2+0.4
    assert "llmp/tiny:latest" in double.models
    server.close()
