"""The single place where errors become HTTP responses.

Native routes answer RFC 9457 problem details; the OpenAI-compatible routes under /v1
answer OpenAI's `{"error": {...}}` envelope, which its SDKs parse.
"""

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from api.errors import AppError

log = logging.getLogger(__name__)

UNPARSABLE = ("The request body could not be parsed: send UTF-8 JSON (Content-Type: "
              "application/json) that is not nested hundreds of levels deep, or a well-formed "
              "multipart/form-data upload.")

_OPENAI_TYPES = {400: "invalid_request_error", 401: "authentication_error",
                 404: "not_found_error", 409: "invalid_request_error",
                 413: "invalid_request_error", 422: "invalid_request_error"}


def _respond(request: Request, status: int, title: str, detail: str,
             errors: list[str] | None = None) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if request.url.path.startswith("/v1/"):
        body = {"error": {"message": detail, "type": _OPENAI_TYPES.get(status, "api_error"),
                          "param": None, "code": None}}
        return JSONResponse(body, status_code=status, headers=headers)
    problem: dict[str, object] = {"type": "about:blank", "title": title, "status": status,
                                  "detail": detail}
    if errors:
        problem["errors"] = errors
    return JSONResponse(problem, status_code=status, headers=headers,
                        media_type="application/problem+json")


def _location(loc: tuple[object, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query")]
    return ".".join(parts) or "request"


def install(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def _app_error(request: Request, exc: AppError) -> JSONResponse:
        return _respond(request, exc.status, exc.title, exc.detail, getattr(exc, "errors", None))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [f"{_location(tuple(e['loc']))}: {e['msg']}" for e in exc.errors()]
        detail = "Invalid request: " + "; ".join(errors)
        return _respond(request, 422, "Unprocessable Content", detail, errors)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        if exc.status_code == 404 and exc.detail == "Not Found":  # no route matched
            return _respond(request, 404, "Not Found",
                            f"No route matches {request.method} {request.url.path}; the API's "
                            "routes are listed at /docs.")
        if exc.status_code == 400 and exc.detail == "There was an error parsing the body":
            return _respond(request, 400, "Bad Request", UNPARSABLE)  # FastAPI's own words
        return _respond(request, exc.status_code, str(exc.detail), str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _respond(request, 500, "Internal Server Error",
                        "Internal error; the server log has the details.")
