"""Bearer API key: when LLM_API_KEY is set, every route but /health requires it.

Checked twice. `ApiKeyGate` (ASGI middleware) answers 401 before anything reads the
request: FastAPI parses a JSON body or a multipart form (spooling files to disk) before a
route's dependencies run, so without it an anonymous client could make the server parse
its uploads and read validation errors about them. `require_api_key` (a dependency on every
guarded router) is the same check where the routes are, and puts the bearer scheme on those
operations in the OpenAPI schema.
"""

import secrets
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.types import ASGIApp, Receive, Scope, Send

from api.docs import DOCS_URL, OAUTH2_REDIRECT_URL, REDOC_URL, STATIC_URL
from api.errors import Unauthorized
from api.problems import problem_response
from api.studio_site import HOME_URL, STUDIO_URL

_bearer = HTTPBearer(auto_error=False, description="The value of LLM_API_KEY.")
# Open without the key: liveness, and the schema and its viewers (the schema, no data)
# with the files they load (published scripts and styles); the Studio's pages and the home
# page (files with no data: the Studio sends the key on its API calls).
OPEN_PATHS = {
    "/health",
    "/openapi.json",
    DOCS_URL,
    OAUTH2_REDIRECT_URL,
    REDOC_URL,
    HOME_URL,
    STUDIO_URL,
}
OPEN_PREFIXES = (STATIC_URL + "/", STUDIO_URL + "/")


def check_key(expected: str, credentials: str | None) -> None:
    if credentials is None:
        raise Unauthorized("Missing API key: send `Authorization: Bearer <LLM_API_KEY>`.")
    if not secrets.compare_digest(credentials.encode(), expected.encode()):
        raise Unauthorized("Invalid API key: check the value of LLM_API_KEY.")


def require_api_key(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    key = request.app.state.settings.api_key
    if key is None:
        return
    check_key(key.get_secret_value(), credentials.credentials if credentials else None)


def _bearer_token(scope: Scope) -> str | None:
    for name, value in scope.get("headers") or []:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" and token.strip() else None
    return None


def is_open(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


class ApiKeyGate:
    """401 for every request without the key (but open paths), before its body is read."""

    def __init__(self, app: ASGIApp, api_key: str | None):
        self.app = app
        self.api_key = api_key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.api_key is not None and scope["type"] == "http" and not is_open(scope["path"]):
            try:
                check_key(self.api_key, _bearer_token(scope))
            except Unauthorized as exc:
                request = Request(scope)
                response = problem_response(request, exc.status, exc.title, exc.detail)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
