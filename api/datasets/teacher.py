"""The teacher: the model that writes a dataset's pairs. Either one of our served models
(through the same ModelServer that answers /generate), or an OpenAI-compatible endpoint whose
URL and key come from settings, never from a request."""

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from api.config import Settings
from api.datasets.ratelimit import TokenBucket, retry_after
from api.errors import AppError
from api.generation import collect
from api.serving.base import ModelServer, ServedModel


class TeacherError(Exception):
    """The teacher cannot be used (unreachable, refused): the job fails with this message."""


@dataclass(frozen=True)
class Reply:
    text: str
    truncated: bool


class Teacher(Protocol):
    name: str

    def complete(
        self, messages: list[dict[str, str]], *, temperature: float, max_tokens: int, seed: int
    ) -> Reply: ...


class ServedTeacher:
    def __init__(self, server: ModelServer, model: ServedModel):
        self.server, self.model, self.name = server, model, model.name

    def complete(
        self, messages: list[dict[str, str]], *, temperature: float, max_tokens: int, seed: int
    ) -> Reply:
        options: dict[str, Any] = {
            **self.model.options,
            "temperature": temperature,
            "max_tokens": max_tokens,
            "seed": seed,
        }
        try:
            text, last = collect(self.server.chat(self.model, messages, options))
        except AppError as exc:
            raise TeacherError(f"The teacher {self.name!r} failed: {exc.detail}") from exc
        return Reply(text=text, truncated=last.finish_reason == "length")


@dataclass
class Pace:
    """How an OpenAI-compatible teacher is paced, and what it saw (read by the job's report).
    `log` holds (seconds since start, what happened) for requests, waits and 429s."""

    requests_per_minute: float | None = None
    burst: int = 1
    max_retries: int = 5
    requests: int = 0
    rate_limited: int = 0
    waited_seconds: float = 0.0
    log: list[tuple[float, str]] = field(default_factory=list)
    _start: float = field(default_factory=time.monotonic)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, what: str, **counts: float) -> None:
        with self._lock:
            self.log.append((round(time.monotonic() - self._start, 3), what))
            del self.log[:-1000]  # the last thousand are enough to see the pattern
            self.requests += int(counts.get("requests", 0))
            self.rate_limited += int(counts.get("rate_limited", 0))
            self.waited_seconds += counts.get("waited", 0.0)


class OpenAITeacher:
    """Any OpenAI-compatible chat endpoint (vLLM, llama-server, Ollama's /v1, OpenAI).
    Thread-safe: a job with `concurrency` > 1 calls it from several threads; the token bucket
    (requests_per_minute) is shared by them, and a 429 is retried after its Retry-After."""

    def __init__(self, settings: Settings, model: str, pace: Pace | None = None):
        import openai

        assert settings.teacher_base_url is not None
        self.base_url, self.model = settings.teacher_base_url, model
        self.name = f"openai:{model}"
        self.pace = pace or Pace()
        self.bucket = (
            TokenBucket(self.pace.requests_per_minute, burst=self.pace.burst)
            if self.pace.requests_per_minute
            else None
        )
        key = settings.teacher_api_key.get_secret_value() if settings.teacher_api_key else "none"
        self._errors = openai.APIError  # connection failures and error statuses alike
        self._rate_limited = openai.RateLimitError
        self._transient = (openai.APIConnectionError, openai.InternalServerError)
        self._client = openai.OpenAI(  # retries are ours: 429s paced, the others twice
            base_url=self.base_url, api_key=key, timeout=settings.teacher_timeout, max_retries=0
        )

    def _create(self, **kwargs: Any) -> Any:
        transient = 0
        for attempt in range(self.pace.max_retries + 1):
            if self.bucket is not None:
                waited = self.bucket.acquire()
                if waited:
                    self.pace.note(f"waited {waited:.2f}s for the rate limit", waited=waited)
            self.pace.note("request", requests=1)
            try:
                return self._client.chat.completions.create(**kwargs)
            except self._transient:
                if transient == 2:
                    raise
                transient += 1
                time.sleep(0.5 * transient)
                continue
            except self._rate_limited as exc:
                if attempt == self.pace.max_retries:
                    raise
                delay = retry_after(exc.response.headers.get("retry-after"), 2.0**attempt)
                self.pace.note(f"429: retrying after {delay:.2f}s", rate_limited=1)
                time.sleep(delay)
        raise AssertionError("unreachable")

    def complete(
        self, messages: list[dict[str, str]], *, temperature: float, max_tokens: int, seed: int
    ) -> Reply:
        try:
            answer = self._create(
                model=self.model,
                messages=messages,
                temperature=temperature,
                max_tokens=max_tokens,
                seed=seed,
            )
        except self._errors as exc:
            status = getattr(exc, "status_code", None)
            what = f"answered HTTP {status}" if status else "is not reachable"
            raise TeacherError(
                f"The teacher endpoint {self.base_url} {what} "
                f"({type(exc).__name__}: {_message(exc)}); check "
                "LLM_TEACHER_BASE_URL, LLM_TEACHER_API_KEY and the model name "
                f"{self.model!r}."
            ) from exc
        if not answer.choices:
            return Reply(text="", truncated=False)
        choice = answer.choices[0]
        return Reply(text=choice.message.content or "", truncated=choice.finish_reason == "length")

    def close(self) -> None:
        self._client.close()


def _message(exc: Exception) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])[:300]
    return str(exc)[:300]
