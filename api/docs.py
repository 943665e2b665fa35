"""Swagger UI (/docs) and ReDoc (/redoc) from files the API serves itself, never a CDN.

FastAPI's own pages load their scripts, styles and favicon from jsdelivr and fastapi's site
(ReDoc also Google Fonts), so on a host without internet /docs is a blank page. Here the
same pages (FastAPI's `get_swagger_ui_html`/`get_redoc_html`) point at copies under
api/static/vendor/, which scripts/vendor_js.py refreshes from the npm registry at pinned
versions. The app is created with `docs_url=None, redoc_url=None` and calls `install`.
"""

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC_URL = "/static"  # open without the API key (api/auth.py): published files, no data
DOCS_URL, REDOC_URL, OAUTH2_REDIRECT_URL = "/docs", "/redoc", "/docs/oauth2-redirect"
SWAGGER = "vendor/swagger-ui-dist"
FILES = {  # the vendored files the pages link to, relative to STATIC_DIR
    "swagger_js": f"{SWAGGER}/swagger-ui-bundle.js",
    "swagger_css": f"{SWAGGER}/swagger-ui.css",
    "favicon": f"{SWAGGER}/favicon-32x32.png",
    "redoc_js": "vendor/redoc/bundles/redoc.standalone.js",
}


def _urls(request: Request) -> dict[str, str]:
    """Each page's URLs under the root path a proxy mounts the API at, as FastAPI does."""
    root = request.scope.get("root_path", "").rstrip("/")
    urls = {name: f"{root}{STATIC_URL}/{path}" for name, path in FILES.items()}
    return {
        **urls,
        "openapi": root + request.app.openapi_url,
        "oauth2_redirect": root + OAUTH2_REDIRECT_URL,
    }


def install(app: FastAPI) -> None:
    app.mount(STATIC_URL, StaticFiles(directory=STATIC_DIR), name="static")

    @app.get(DOCS_URL, include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        urls = _urls(request)
        return get_swagger_ui_html(
            openapi_url=urls["openapi"],
            title=f"{app.title} - Swagger UI",
            swagger_js_url=urls["swagger_js"],
            swagger_css_url=urls["swagger_css"],
            swagger_favicon_url=urls["favicon"],
            oauth2_redirect_url=urls["oauth2_redirect"],
            init_oauth=app.swagger_ui_init_oauth,
            # no badge image from validator.swagger.io, whatever host the page is on
            swagger_ui_parameters={"validatorUrl": None, **(app.swagger_ui_parameters or {})},
        )

    @app.get(OAUTH2_REDIRECT_URL, include_in_schema=False)
    def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get(REDOC_URL, include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        urls = _urls(request)
        return get_redoc_html(
            openapi_url=urls["openapi"],
            title=f"{app.title} - ReDoc",
            redoc_js_url=urls["redoc_js"],
            redoc_favicon_url=urls["favicon"],
            with_google_fonts=False,
        )
