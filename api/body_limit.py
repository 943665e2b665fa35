"""A cap on request bodies, enforced while they arrive (ASGI middleware).

FastAPI parses a JSON body or a multipart form (spooling files to disk) before the route
runs, so a route's own size check comes after the whole body was received. This stops
reading at the first byte over the limit: a declared Content-Length over it is refused at
once; a chunked body is cut off when it crosses it. Multipart bodies may hold a training
file and an eval file (LLM_MAX_DATASET_BYTES each); other bodies are JSON requests.
`/importDocument` streams its upload to disk and caps it itself (api/rag/upload.py), with
its own limit and message. Every 413 says `Connection: close`, so that the server stops
reading the body rather than draining it.
"""

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.config import Settings
from api.problems import problem_response

JSON_LIMIT = 8 * 1024 * 1024  # far above any prompt, message list or spec
FORM_OVERHEAD = 256 * 1024  # multipart headers and text fields next to the files
SELF_LIMITED = {"/importDocument"}


class _TooLarge(Exception):
    pass


class BodyLimit:
    def __init__(self, app: ASGIApp, settings: Settings):
        self.app = app
        self.settings = settings

    def _limit(self, scope: Scope) -> tuple[int, str]:
        headers = dict(scope.get("headers") or [])
        if headers.get(b"content-type", b"").startswith(b"multipart/form-data"):
            return (
                2 * self.settings.max_dataset_bytes + FORM_OVERHEAD,
                "two files of LLM_MAX_DATASET_BYTES each and the form fields; upload smaller files",
            )
        return JSON_LIMIT, "a JSON request body; send less"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] in SELF_LIMITED:
            await self.app(scope, receive, _closing_on_413(send))
            return
        limit, what = self._limit(scope)
        detail = f"The request body is larger than the limit of {limit} bytes ({what})."
        length = dict(scope.get("headers") or []).get(b"content-length", b"")
        if length.isdigit() and int(length) > limit:
            await self._refuse(scope, receive, send, detail)
            return
        received = 0
        exceeded = started = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise _TooLarge(detail)
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded:  # whatever the app answered after the cut, the answer is 413
                if message["type"] == "http.response.start" and not started:
                    started = True
                    await self._refuse(scope, receive, send, detail)
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not exceeded:
                raise
            if not started:
                await self._refuse(scope, receive, send, detail)

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, detail: str) -> None:
        response = problem_response(Request(scope), 413, "Content Too Large", detail)
        await response(scope, receive, _closing_on_413(send))


def _closing_on_413(send: Send) -> Send:
    """Add `Connection: close` to a 413: the server then closes the connection instead of
    reading (and discarding) the rest of a body nobody wants."""

    async def closing(message: Message) -> None:
        if message["type"] == "http.response.start" and message["status"] == 413:
            headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"connection"]
            message = {**message, "headers": [*headers, (b"connection", b"close")]}
        await send(message)

    return closing
