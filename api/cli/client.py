"""The HTTP side of `llmp`: one httpx client with the URL and key, errors as exit codes.

Exit codes (docs/cli.md): 0 done; 1 the API refused or failed (its `detail` is printed);
2 wrong usage (click's own); 3 the service cannot be reached; 4 a followed job failed;
5 a followed job was cancelled; 130 interrupted (Ctrl-C).
"""

import json
import os
import sys
from collections.abc import Iterator
from typing import Any, NoReturn

import httpx

DEFAULT_URL = "http://127.0.0.1:8000"

API_ERROR, USAGE, UNREACHABLE, JOB_FAILED, JOB_CANCELLED, INTERRUPTED = 1, 2, 3, 4, 5, 130


class CliExit(Exception):
    """Leave with `code` after printing `message` to stderr."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.message, self.code = message, code


def fail(message: str, code: int = USAGE) -> NoReturn:
    raise CliExit(message, code)


def _detail(response: httpx.Response) -> str:
    """The problem's `detail` (and its `errors`), OpenAI's `error.message`, or the text."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:2000] or response.reason_phrase
    if isinstance(body, dict):
        if isinstance(body.get("error"), dict):
            return str(body["error"].get("message"))
        detail = str(body.get("detail") or body.get("title") or body)
        errors = body.get("errors") or []
        return "\n".join([detail, *(f"  - {e}" for e in errors if e not in detail)])
    return str(body)


class Api:
    """A running service at `url`; every call raises CliExit on an error answer."""

    def __init__(self, url: str | None = None, key: str | None = None, timeout: float = 600):
        self.url = (url or os.environ.get("LLM_URL") or DEFAULT_URL).rstrip("/")
        key = key if key is not None else os.environ.get("LLM_API_KEY")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.http = httpx.Client(
            base_url=self.url, headers=headers, timeout=httpx.Timeout(timeout, connect=10)
        )

    def _check(self, response: httpx.Response) -> httpx.Response:
        if response.is_error:
            response.read()
            raise CliExit(f"Error {response.status_code}: {_detail(response)}", API_ERROR)
        return response

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._check(self.http.request(method, path, **kwargs))
        except httpx.TransportError as exc:
            self.unreachable(exc)

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.request(method, path, **kwargs).json()

    def stream(self, method: str, path: str, **kwargs: Any) -> "_Stream":
        """A context-managed streamed response (use `with api.stream(...) as r`)."""
        return _Stream(self, method, path, kwargs)

    def unreachable(self, exc: Exception) -> NoReturn:
        raise CliExit(
            f"Cannot reach the service at {self.url}: {exc}. Is it running (`make run`)? "
            "Set --url or LLM_URL.",
            UNREACHABLE,
        )

    def sse(self, path: str, **params: Any) -> Iterator[tuple[str, dict[str, Any]]]:
        """Server-sent events as (event, data) pairs, until the stream ends."""
        with self.stream("GET", path, params=params, timeout=None) as r:
            event = "message"
            for line in r.iter_lines():
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    yield event, json.loads(line[6:])
                elif not line:
                    event = "message"


class _Stream:
    def __init__(self, api: Api, method: str, path: str, kwargs: dict[str, Any]):
        self.api, self.method, self.path, self.kwargs = api, method, path, kwargs

    def __enter__(self) -> httpx.Response:
        try:
            self.cm = self.api.http.stream(self.method, self.path, **self.kwargs)
            return self.api._check(self.cm.__enter__())
        except httpx.TransportError as exc:
            self.api.unreachable(exc)

    def __exit__(self, *exc: object) -> None:
        self.cm.__exit__(*exc)  # type: ignore[arg-type]


def run(app: Any) -> None:
    """Call the typer app, turning CliExit into its message on stderr and its exit code."""
    try:
        app()
    except CliExit as exc:
        print(exc.message, file=sys.stderr)
        sys.exit(exc.code)
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        sys.exit(INTERRUPTED)
