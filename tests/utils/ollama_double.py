"""A protocol double of the Ollama server: a real HTTP server on a loopback port.

It follows Ollama's API documentation (docs/api.md) for the calls the platform makes:
- `HEAD /api/blobs/:digest` 200 or 404; `POST /api/blobs/:digest` hashes the body and
  answers 201, or 400 when the digest does not match (or is not `sha256:` + 64 hex);
- `POST /api/create` with `model`, `from`, `files`, `adapters`, `system`, `template`,
  `parameters`, streamed as `{"status": ...}` lines ending in `success`; structural
  mistakes are a 400, while unknown blobs, an unknown `from`, a file that is not GGUF or an
  unknown parameter are reported as a last `{"error": ...}` line after a 200;
- `GET /api/tags` (with each model's `details`), `DELETE /api/delete` (404 for unknown
  models);
- `POST /api/chat` streamed as NDJSON with `prompt_eval_count`, `eval_count` and
  `done_reason` on the last line; 404 for an unknown model, 503 when `busy`. A chat loads
  its model into memory;
- `GET /api/ps` lists the models in memory; `POST /api/generate` with an empty prompt loads
  a model, and with `keep_alive: 0` unloads it, answering one JSON object with
  `done_reason` `load` or `unload` (404 for an unknown model). Generation from a prompt is
  not needed by the platform and answers 501 here.

Models pulled from Ollama's library are added with `pull(name, family=...)`.

Knobs for tests: `reply` (the words the "model" says), `error_after` (emit an
`{"error": ...}` line after that many content lines), `cut_after` (end the stream there,
without a final line), `garbage_after` (a line that is not JSON), `delay` (seconds before
the first chat line), `busy`, and `stop()`/`start()` to take Ollama down and up again.
Every request is recorded in `requests` as (method, path, JSON body or None); the names of
unloaded models in `unloaded`.
"""

import hashlib
import json
import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from api.models.catalog import BaseModelInfo, write_manifest
from tests.utils.net import free_port

DIGEST_RE = re.compile(r"^sha256[:-][0-9a-f]{64}$")
NAME_RE = re.compile(r"^(?:[A-Za-z0-9][\w.-]{0,79}/)?[A-Za-z0-9][\w.-]{0,79}(?::\w[\w.-]{0,79})?$")
# Modelfile parameters Ollama accepts (docs/modelfile.md); anything else fails the create.
PARAMETERS = {
    "num_ctx",
    "repeat_last_n",
    "repeat_penalty",
    "temperature",
    "seed",
    "stop",
    "num_predict",
    "top_k",
    "top_p",
    "min_p",
    "num_keep",
    "typical_p",
    "presence_penalty",
    "frequency_penalty",
    "mirostat",
    "mirostat_eta",
    "mirostat_tau",
    "penalize_newline",
    "num_batch",
    "num_gpu",
    "num_thread",
}


def make_base(models_dir: Path, name: str, content: bytes = b"GGUF\x03\x00tiny-weights") -> Path:
    """A provisioned base for tests: a small fake GGUF (the double never parses it)."""
    directory = models_dir / name
    directory.mkdir(parents=True)
    (directory / "model.gguf").write_bytes(content)
    write_manifest(
        BaseModelInfo(
            name=name,
            directory=directory,
            gguf_file="model.gguf",
            hf_dir=None,
            source="test",
            created_at="2026-01-01T00:00:00",
        )
    )
    return directory / "model.gguf"


def _full(name: str) -> str:
    last = name.rsplit("/", 1)[-1]
    return name if ":" in last else f"{name}:latest"


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _now() -> str:
    return datetime.now(UTC).isoformat()


class OllamaDouble:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.blobs: dict[str, bytes] = {}  # digest -> the blob's first bytes (enough for magic)
        self.blob_sizes: dict[str, int] = {}
        self.models: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str, Any]] = []
        self.loaded: set[str] = set()  # full names of the models in memory
        self.unloaded: list[str] = []
        self.reply = "Ahoy there matey"
        self.error_after: int | None = None
        self.cut_after: int | None = None
        self.garbage_after: int | None = None
        self.delay = 0.0
        self.busy = False
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.app = Starlette(
            routes=[
                Route("/api/blobs/{digest}", self._blob, methods=["HEAD", "POST"]),
                Route("/api/create", self._create, methods=["POST"]),
                Route("/api/tags", self._tags, methods=["GET"]),
                Route("/api/delete", self._delete, methods=["DELETE"]),
                Route("/api/chat", self._chat, methods=["POST"]),
                Route("/api/ps", self._ps, methods=["GET"]),
                Route("/api/generate", self._generate, methods=["POST"]),
            ]
        )

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> "OllamaDouble":
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"the Ollama double did not start on {self.url}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Ollama goes down: the port refuses connections until `start()`."""
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
            self._server = self._thread = None

    def calls(self, method: str, path: str) -> list[Any]:
        return [body for m, p, body in self.requests if m == method and p == path]

    def pull(
        self,
        name: str,
        *,
        family: str = "llama",
        parameter_size: str = "3.2B",
        quantization: str = "Q4_K_M",
    ) -> str:
        """A model pulled from Ollama's library (`ollama pull name`); returns its full name."""
        full = _full(name)
        self.models[full] = {
            "modified_at": _now(),
            "details": {
                "parent_model": "",
                "format": "gguf",
                "family": family,
                "families": [family],
                "parameter_size": parameter_size,
                "quantization_level": quantization,
            },
        }
        return full

    # -- handlers -----------------------------------------------------------------------

    async def _json(self, request: Request) -> dict[str, Any]:
        body = json.loads(await request.body() or b"{}")
        self.requests.append((request.method, request.url.path, body))
        return body

    async def _blob(self, request: Request) -> Response:
        digest = request.path_params["digest"]
        if request.method == "HEAD":
            self.requests.append(("HEAD", request.url.path, None))
            if not DIGEST_RE.fullmatch(digest):
                return Response(status_code=400)
            return Response(status_code=200 if digest in self.blobs else 404)
        self.requests.append(("POST", request.url.path, None))
        if not DIGEST_RE.fullmatch(digest):
            return _error(400, "invalid digest format")
        sha, head, size = hashlib.sha256(), b"", 0
        async for part in request.stream():
            sha.update(part)
            head = (head + part)[:8] if len(head) < 8 else head
            size += len(part)
        actual = f"sha256:{sha.hexdigest()}"
        if actual != digest.replace("-", ":", 1):
            return _error(400, f"digest mismatch, expected {digest}, got {actual}")
        self.blobs[digest], self.blob_sizes[digest] = head, size
        return Response(status_code=201)

    def _create_problem(self, body: dict[str, Any]) -> str | None:
        """What Ollama reports mid-stream for a create it cannot do (None when it can)."""
        source = body.get("from")
        if source and _full(source) not in self.models:
            return f"pull model manifest: model '{source}' not found"
        for digest in [*(body.get("files") or {}).values(), *(body.get("adapters") or {}).values()]:
            if digest not in self.blobs:
                return f"blob {digest} not found: upload it with POST /api/blobs/{digest}"
        for digest in (body.get("files") or {}).values():
            if not self.blobs[digest].startswith(b"GGUF"):
                return "invalid file magic"
        unknown = sorted(set(body.get("parameters") or {}) - PARAMETERS)
        if unknown:
            return f"unknown parameter '{unknown[0]}'"
        return None

    async def _create(self, request: Request) -> Response:
        body = await self._json(request)
        name = body.get("model") or ""
        if not NAME_RE.fullmatch(name):
            return _error(400, "invalid model name")
        if not body.get("from") and not body.get("files"):
            return _error(400, "neither 'from' or 'files' was specified")
        digests = [*(body.get("files") or {}).values(), *(body.get("adapters") or {}).values()]
        if any(not DIGEST_RE.fullmatch(d) for d in digests):
            return _error(400, "invalid digest format")
        problem = self._create_problem(body)
        if problem is None:
            self.models[_full(name)] = {**body, "modified_at": _now()}
        if body.get("stream") is False:
            return _error(400, problem) if problem else JSONResponse({"status": "success"})

        def lines() -> Iterator[str]:
            yield json.dumps({"status": "parsing GGUF"}) + "\n"
            for digest in digests:
                yield json.dumps({"status": f"using existing layer {digest}"}) + "\n"
            if problem:
                yield json.dumps({"error": problem}) + "\n"
                return
            yield json.dumps({"status": "writing manifest"}) + "\n"
            yield json.dumps({"status": "success"}) + "\n"

        return StreamingResponse(lines(), media_type="application/x-ndjson")

    async def _tags(self, request: Request) -> Response:
        self.requests.append(("GET", request.url.path, None))
        return JSONResponse({"models": [self._entry(n) for n in sorted(self.models)]})

    def _entry(self, name: str) -> dict[str, Any]:
        model = self.models[name]
        return {
            "name": name,
            "model": name,
            "modified_at": model["modified_at"],
            "size": 1,
            "digest": hashlib.sha256(name.encode()).hexdigest(),
            "details": model.get("details") or {"format": "gguf", "family": "llama"},
        }

    async def _ps(self, request: Request) -> Response:
        self.requests.append(("GET", request.url.path, None))
        running = [
            {**self._entry(n), "expires_at": _now(), "size_vram": 1}
            for n in sorted(self.loaded)
            if n in self.models
        ]
        for entry in running:
            del entry["modified_at"]
        return JSONResponse({"models": running})

    async def _generate(self, request: Request) -> Response:
        body = await self._json(request)
        name = _full(body.get("model") or "")
        if name not in self.models:
            return _error(404, f"model '{body.get('model')}' not found")
        if body.get("prompt"):
            return _error(501, "the Ollama double does not generate from a prompt")
        unload = body.get("keep_alive") in (0, "0", "0s", "0m")
        if unload:
            self.loaded.discard(name)
            self.unloaded.append(name)
        else:
            self.loaded.add(name)
        return JSONResponse(
            {
                "model": body["model"],
                "created_at": _now(),
                "response": "",
                "done": True,
                "done_reason": "unload" if unload else "load",
            }
        )

    async def _delete(self, request: Request) -> Response:
        body = await self._json(request)
        name = _full(body.get("model") or body.get("name") or "")
        if self.models.pop(name, None) is None:
            return _error(404, f"model '{name}' not found")
        return Response(status_code=200)

    async def _chat(self, request: Request) -> Response:
        body = await self._json(request)
        name = _full(body.get("model") or "")
        if self.busy:
            return _error(503, "server busy, please try again.  maximum pending requests exceeded")
        if name not in self.models:
            return _error(404, f'model "{body.get("model")}" not found, try pulling it first')
        self.loaded.add(name)
        words = re.findall(r"\S+\s*", self.reply)
        limit = (body.get("options") or {}).get("num_predict")
        reason = "length" if limit is not None and limit < len(words) else "stop"
        words = words[:limit] if limit is not None else words
        prompt_tokens = sum(len(m.get("content", "").split()) for m in body.get("messages", []))

        def part(content: str, **extra: Any) -> dict[str, Any]:
            return {
                "model": body["model"],
                "created_at": _now(),
                "message": {"role": "assistant", "content": content},
                **extra,
            }

        final = part(
            "",
            done=True,
            done_reason=reason,
            prompt_eval_count=prompt_tokens,
            eval_count=len(words),
            total_duration=1,
            eval_duration=1,
        )
        if body.get("stream") is False:
            return JSONResponse(
                {**final, "message": {"role": "assistant", "content": "".join(words)}}
            )

        def lines() -> Iterator[str]:
            time.sleep(self.delay)  # a model being loaded
            for i, word in enumerate(words):
                if i == self.error_after:
                    yield (
                        json.dumps(
                            {
                                "error": "an error was encountered while running the "
                                "model: unexpected EOF"
                            }
                        )
                        + "\n"
                    )
                    return
                if i == self.cut_after:
                    return
                if i == self.garbage_after:
                    yield "<html>proxy error</html>\n"
                    return
                yield json.dumps(part(word, done=False)) + "\n"
            yield json.dumps(final) + "\n"

        return StreamingResponse(lines(), media_type="application/x-ndjson")
