"""Bearer API key: when LLM_API_KEY is set, every route but /health requires it."""

import secrets
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.errors import Unauthorized

_bearer = HTTPBearer(auto_error=False, description="The value of LLM_API_KEY.")


def require_api_key(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    key = request.app.state.settings.api_key
    if key is None:
        return
    if credentials is None:
        raise Unauthorized("Missing API key: send `Authorization: Bearer <LLM_API_KEY>`.")
    if not secrets.compare_digest(
        credentials.credentials.encode(), key.get_secret_value().encode()
    ):
        raise Unauthorized("Invalid API key: check the value of LLM_API_KEY.")
