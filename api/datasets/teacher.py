"""The teacher: the model that writes a dataset's pairs. Either one of our served models
(through the same ModelServer that answers /generate), or an OpenAI-compatible endpoint whose
URL and key come from settings, never from a request."""

from dataclasses import dataclass
from typing import Any, Protocol

from api.config import Settings
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


class OpenAITeacher:
    """Any OpenAI-compatible chat endpoint (vLLM, llama-server, Ollama's /v1, OpenAI)."""

    def __init__(self, settings: Settings, model: str):
        import openai

        assert settings.teacher_base_url is not None
        self.base_url, self.model = settings.teacher_base_url, model
        self.name = f"openai:{model}"
        key = settings.teacher_api_key.get_secret_value() if settings.teacher_api_key else "none"
        self._errors = openai.APIError  # connection failures and error statuses alike
        self._client = openai.OpenAI(
            base_url=self.base_url, api_key=key, timeout=settings.teacher_timeout, max_retries=2
        )

    def complete(
        self, messages: list[dict[str, str]], *, temperature: float, max_tokens: int, seed: int
    ) -> Reply:
        try:
            answer = self._client.chat.completions.create(
                model=self.model,
                messages=messages,  # type: ignore[arg-type]
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
