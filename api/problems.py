"""The single place where errors become HTTP responses.

Native routes answer RFC 9457 problem details; the OpenAI-compatible routes under /v1
answer OpenAI's `{"error": {...}}` envelope, which its SDKs parse.
"""

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException
from starlette.routing import compile_path

from api.errors import AppError

log = logging.getLogger(__name__)

UNPARSABLE = (
    "The request body could not be parsed: send UTF-8 JSON (Content-Type: "
    "application/json) that is not nested hundreds of levels deep, or a well-formed "
    "multipart/form-data upload."
)

_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
}


class Problem(BaseModel):
    """RFC 9457 problem details: what went wrong and what to do about it."""

    type: str = Field("about:blank", description="Always `about:blank`: the status says it.")
    title: str = Field(..., description="The status's reason phrase.")
    status: int = Field(..., description="The HTTP status code.")
    detail: str = Field(..., description="What went wrong and what to do.")
    errors: list[str] = Field(
        default_factory=list, description="Every problem found (validation), `field: message`."
    )


class OpenAIErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class OpenAIError(BaseModel):
    """OpenAI's error envelope, answered by the /v1 routes."""

    error: OpenAIErrorDetail


DESCRIPTIONS = {
    400: "The body could not be parsed (not UTF-8 JSON, or a malformed multipart form).",
    401: "Missing or invalid API key: send `Authorization: Bearer <LLM_API_KEY>`.",
    404: "Not found; the detail says what exists.",
    409: "Conflicts with the current state; the detail says which.",
    413: "The upload is larger than the configured limit.",
    422: "Invalid request; `errors` lists every problem.",
    503: "A backend (Ollama, Chroma) is unavailable or busy; retry later.",
}


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: the error statuses it can answer besides 401 and 422 (which
    are documented for every guarded route and every route with input); their bodies are
    filled in with the problem (or, on /v1, OpenAI error) schema when the schema is built."""
    return {status: {"description": DESCRIPTIONS[status]} for status in statuses}


def problem_response(
    request: Request,
    status: int,
    title: str,
    detail: str,
    errors: list[str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """The error answer for `request`: problem details, or OpenAI's envelope under /v1/.
    Also used by the middlewares (auth, body limit) that answer before any route runs."""
    headers = dict(headers or {})
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if request.url.path.startswith("/v1/"):
        body = {
            "error": {
                "message": detail,
                "type": _OPENAI_TYPES.get(status, "api_error"),
                "param": None,
                "code": None,
            }
        }
        return JSONResponse(body, status_code=status, headers=headers)
    problem: dict[str, object] = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
    }
    if errors:
        problem["errors"] = errors
    return JSONResponse(
        problem, status_code=status, headers=headers, media_type="application/problem+json"
    )


def _location(loc: tuple[object, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query")]
    return ".".join(parts) or "request"


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _allowed_methods(request: Request) -> str:
    """The methods of the path's resource: of the most specific path templates that match it
    (`/datasets/generate`, not also `/datasets/{dataset_id}`). Read from the schema, since
    FastAPI keeps one route per method inside included routers."""
    app = request.app
    templates: dict[str, set[str]] = {}
    for path, item in app.openapi().get("paths", {}).items():
        templates.setdefault(path, set()).update(m.upper() for m in item)
    for route in app.routes:  # the schema and the docs pages
        if getattr(route, "methods", None) and isinstance(getattr(route, "path", None), str):
            templates.setdefault(route.path, set()).update(route.methods)
    matching = [
        (path.count("{"), path)
        for path in templates
        if compile_path(path)[0].match(request.url.path)
    ]
    if not matching:
        return ""
    fewest = min(params for params, _ in matching)
    methods = set().union(*(templates[path] for params, path in matching if params == fewest))
    return ", ".join(m for m in _METHODS if m in methods)


def install(app: FastAPI) -> None:
    """Translate every error to `problem_response` (the schema says so: api/openapi.py)."""

    @app.exception_handler(AppError)
    async def _app_error(request: Request, exc: AppError) -> JSONResponse:
        return problem_response(
            request,
            exc.status,
            exc.title,
            exc.detail,
            getattr(exc, "errors", None),
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [f"{_location(tuple(e['loc']))}: {e['msg']}" for e in exc.errors()]
        detail = "Invalid request: " + "; ".join(errors)
        return problem_response(request, 422, "Unprocessable Content", detail, errors)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        if exc.status_code == 404 and exc.detail == "Not Found":  # no route matched
            return problem_response(
                request,
                404,
                "Not Found",
                f"No route matches {request.method} {request.url.path}; the API's "
                "routes are listed at /docs.",
            )
        if exc.status_code == 400 and exc.detail == "There was an error parsing the body":
            # FastAPI's own words
            return problem_response(request, 400, "Bad Request", UNPARSABLE)
        if exc.status_code == 405:  # Starlette's `Allow` names one route's methods, not the path's
            exc.headers = {**(exc.headers or {}), "Allow": _allowed_methods(request)}
        # Keep the exception's headers: a 405 must say which methods are allowed (`Allow`).
        return problem_response(
            request, exc.status_code, str(exc.detail), str(exc.detail), headers=exc.headers
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(
            request, 500, "Internal Server Error", "Internal error; the server log has the details."
        )
