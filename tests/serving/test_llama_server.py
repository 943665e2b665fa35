"""Backend `llamaserver` with the real llama-server binary and the SmolLM2 GGUF: replies,
adapters per request, seeds, the LRU of children, and children that fail."""

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from api.config import REPO_ROOT, Settings
from api.errors import Unavailable
from api.generation import collect
from api.models.catalog import BaseCatalog
from api.models.service import served_model
from api.serving.base import ServedModel
from api.serving.llama_server import LlamaServer
from tests.utils.lora_gguf import random_lora_gguf
from tests.utils.ollama_double import make_base

BIN = REPO_ROOT / "llama.cpp" / "bin"
ASK = [{"role": "user", "content": "Name three colours."}]
GREEDY = {"max_tokens": 12, "temperature": 0.0}


def _children() -> list[psutil.Process]:
    """llama-server processes started by this test process."""
    me = psutil.Process()
    return [p for p in me.children(recursive=True) if p.name() == "llama-server"]


@pytest.mark.parametrize("tool", ["llama-server", "llama-export-lora"])
def test_setup_built_the_llama_cpp_tools(tool):
    result = subprocess.run(
        [str(BIN / tool), "--version"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "version:" in result.stdout + result.stderr


def test_setup_built_llama_quantize():
    result = subprocess.run([str(BIN / "llama-quantize")], capture_output=True, text=True)
    assert result.returncode == 1  # no arguments: its usage, with the types it writes
    assert "usage:" in result.stdout and "Q4_K_M" in result.stdout


def test_a_second_build_is_skipped():
    started = time.monotonic()
    result = subprocess.run(
        [str(REPO_ROOT / "scripts" / "build_llamacpp.sh")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "already built in llama.cpp/bin/" in result.stdout
    assert time.monotonic() - started < 60


@pytest.fixture(scope="module")
def ls_settings(tmp_path_factory, base_models_dir) -> Settings:
    return Settings(
        data_dir=tmp_path_factory.mktemp("ls-data"),
        base_models_dir=base_models_dir,
        threads=2,
        backend="llamaserver",
        parallel=2,
        max_loaded_models=1,
    )


@pytest.fixture(scope="module")
def base(ls_settings) -> ServedModel:
    return served_model(
        BaseCatalog(ls_settings.models_dir).get(ls_settings.default_base_model), None
    )


@pytest.fixture(scope="module")
def backend(ls_settings):
    server = LlamaServer(ls_settings)
    yield server
    server.close()
    assert _children() == []  # no orphans


def _text(server: LlamaServer, model: ServedModel, options: dict, ask=ASK) -> str:
    return collect(server.chat(model, ask, options))[0]


def test_reply_stream_and_token_counts(backend, base):
    chunks = list(backend.chat(base, ASK, {"max_tokens": 8, "seed": 1}))
    assert len(chunks) >= 2  # streamed piece by piece
    last = chunks[-1]
    assert last.finish_reason == "length"
    assert last.completion_tokens == 8
    assert last.prompt_tokens and last.prompt_tokens > 5
    child = backend.health()["children"][0]
    assert child["model"] == base.name and psutil.pid_exists(child["pid"])
    log_dir = backend.settings.data_dir / "logs" / "llama-server"
    assert any(log_dir.glob("*.log"))


def test_adapter_is_chosen_per_request(backend, base, tmp_path_factory):
    hf = base.gguf_path.parent / "hf"
    adapter = random_lora_gguf(hf, tmp_path_factory.mktemp("lora"))
    variant = ServedModel(
        name="lora-variant", gguf_path=base.gguf_path, adapter_path=adapter, base_name=base.name
    )
    plain = _text(backend, base, GREEDY)
    backend.register(variant)
    tuned = _text(backend, variant, GREEDY)
    assert tuned != plain  # the adapter is applied to the variant's request ...
    assert _text(backend, base, GREEDY) == plain  # ... and not to the base's
    assert backend.health()["children"][0]["adapters"] == 1  # one child for both


def test_seed_reproduces_the_reply_with_prompt_caching_on(backend, base):
    options = {"max_tokens": 16, "temperature": 1.0, "seed": 42}
    first = _text(backend, base, options)
    _text(backend, base, {"max_tokens": 4, "seed": 7}, ask=ASK + [{"role": "user", "content": "x"}])
    assert _text(backend, base, options) == first
    assert _text(backend, base, {**options, "seed": 43}) != first


def test_least_recently_used_child_is_stopped(backend, base, tmp_path):
    copy = tmp_path / "copy" / "model.gguf"
    copy.parent.mkdir()
    os.link(base.gguf_path, copy)  # another GGUF file: another child
    other = ServedModel(name="copy", gguf_path=copy)
    _text(backend, base, {"max_tokens": 2})
    first_pid = backend.health()["children"][0]["pid"]
    _text(backend, other, {"max_tokens": 2})
    assert backend.health()["loaded"] == ["copy"]  # max_loaded_models=1
    assert not psutil.pid_exists(first_pid) or psutil.Process(first_pid).status() == "zombie"
    assert backend.unload_all() == ["copy"]
    assert _children() == []


def test_a_model_that_fails_to_load_three_times_is_unavailable(ls_settings, tmp_path):
    server = LlamaServer(ls_settings.model_copy(update={"data_dir": tmp_path}))
    broken = ServedModel(name="broken", gguf_path=make_base(tmp_path / "m", "broken"))
    errors = []
    try:
        for _ in range(3):
            with pytest.raises(Unavailable) as caught:
                list(server.chat(broken, ASK, {"max_tokens": 2}))
            errors.append(caught.value)
            if caught.value.retry_after:
                time.sleep(caught.value.retry_after)
        assert "log" in errors[0].detail and errors[0].retry_after
        reason = errors[-1].detail
        assert "3 times in a row" in reason and errors[-1].retry_after is None
        assert server.health()["unavailable"] == {"broken": reason}
        assert server.unavailable() == {broken.gguf_path: reason}
    finally:
        server.close()


def test_back_off_answers_503_with_retry_after(ls_settings, tmp_path):
    server = LlamaServer(ls_settings.model_copy(update={"data_dir": tmp_path}))
    broken = ServedModel(name="broken", gguf_path=make_base(tmp_path / "m", "broken"))
    try:
        for _ in range(2):
            with pytest.raises(Unavailable):
                list(server.chat(broken, ASK, {"max_tokens": 2}))
        with pytest.raises(Unavailable) as caught:  # within the back-off: no start at all
            list(server.chat(broken, ASK, {"max_tokens": 2}))
        assert "next start is in" in caught.value.detail
        assert caught.value.headers == {"Retry-After": str(caught.value.retry_after)}
    finally:
        server.close()


def test_killed_child_ends_its_stream_and_the_next_request_restarts_it(backend, base):
    stream = backend.chat(base, ASK, {"max_tokens": 400, "temperature": 1.0, "seed": 3})
    next(stream)
    pid = backend.health()["children"][0]["pid"]
    os.kill(pid, signal.SIGSEGV)
    with pytest.raises(Unavailable) as caught:
        for _ in stream:
            pass
    assert "stopped (killed by SIGSEGV)" in caught.value.detail
    assert _text(backend, base, {"max_tokens": 2})  # answered by a new child
    assert backend.health()["children"][0]["pid"] != pid


CHILD_OWNER = """
import sys, threading
from api.config import Settings
from api.models.catalog import BaseCatalog
from api.models.service import served_model
from api.serving.llama_server import LlamaServer

settings = Settings(data_dir=sys.argv[1], base_models_dir=sys.argv[2], threads=1, parallel=1)
server = LlamaServer(settings)
base = served_model(BaseCatalog(settings.models_dir).get(settings.default_base_model), None)
ask = [{"role": "user", "content": "Hi"}]
worker = threading.Thread(target=lambda: list(server.chat(base, ask, {"max_tokens": 1})))
worker.start()
worker.join()  # the request's thread is gone; its child must not go with it
print(server.health()["children"][0]["pid"], flush=True)
sys.stdin.read()
"""


def test_children_outlive_request_threads_and_die_with_the_api(tmp_path, base_models_dir):
    owner = subprocess.Popen(
        [sys.executable, "-c", CHILD_OWNER, str(tmp_path), str(base_models_dir)],
        cwd=REPO_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert owner.stdout is not None
        pid = int(owner.stdout.readline())
        time.sleep(0.5)
        assert psutil.Process(pid).status() != "zombie"
    finally:
        owner.kill()  # SIGKILL: no clean-up code runs in the API
        owner.wait()
    deadline = time.monotonic() + 10
    while psutil.pid_exists(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not psutil.pid_exists(pid)
