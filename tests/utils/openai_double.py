"""A tiny OpenAI-compatible teacher on a loopback port, for the dataset job's pacing tests:
POST /v1/chat/completions answers a task list (max_tokens 160: the Self-Instruct prompt) or
an answer, after `delay` seconds; the first `refuse` requests get HTTP 429 with
`Retry-After: retry_after`. Every request is logged as (arrival, status, user prompt), and
`max_in_flight` is the most it held at once."""

import asyncio
import itertools
import threading
import time
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.utils.net import free_port


class OpenAIDouble:
    def __init__(self, *, delay: float = 0.0, refuse: int = 0, retry_after: str = "0.3"):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.delay, self.refuse, self.retry_after = delay, refuse, retry_after
        self.log: list[tuple[float, int, str]] = []
        self.in_flight = self.max_in_flight = 0
        self._tasks = itertools.count(1)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.app = Starlette(routes=[Route("/v1/chat/completions", self._chat, methods=["POST"])])

    def start(self) -> "OpenAIDouble":
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the OpenAI double did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)

    def arrivals(self, status: int | None = None) -> list[float]:
        return [t for t, s, _ in self.log if status is None or s == status]

    async def _chat(self, request: Request) -> JSONResponse:
        body: dict[str, Any] = await request.json()
        prompt = body["messages"][-1]["content"]
        if self.refuse > 0:
            self.refuse -= 1
            self.log.append((time.monotonic(), 429, prompt))
            return JSONResponse(
                {"error": {"message": "Rate limit reached", "type": "rate_limit"}},
                status_code=429,
                headers={"Retry-After": self.retry_after},
            )
        self.log.append((time.monotonic(), 200, prompt))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.in_flight -= 1
        if body.get("max_tokens") == 160:  # new tasks, each with words no other task has
            numbers = [next(self._tasks) for _ in range(5)]
            text = "\n".join(
                f"{i}. Describe zq{n}a together with kx{n}b for vw{n}c"
                for i, n in enumerate(numbers, 1)
            )
        else:
            text = "Here is a careful, complete answer."
        return JSONResponse(
            {
                "id": "chatcmpl-double",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", "double"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }
        )
