"""/docs and /redoc link only to files the API serves itself, open without the API key.
(tests/test_docs_browser.py renders them in Chromium with the network cut off.)"""

import re

import pytest
from fastapi.testclient import TestClient

from api.config import Settings
from api.docs import FILES, STATIC_DIR
from api.main import create_app

KEY = "docs-key-0123456789abcdef"
LINK_RE = re.compile(r"""(?:src|href|spec-url|url)\s*[=:]\s*["']([^"']+)["']""")
TYPES = {"js": "javascript", "css": "text/css", "png": "image/png"}


@pytest.fixture
def guarded(make_client):
    return make_client(api_key=KEY)


def links(html: str) -> list[str]:
    return LINK_RE.findall(html)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_link_only_to_local_files(guarded, page):
    r = guarded.get(page)  # no key: the gate leaves the viewers and their files open
    assert r.status_code == 200
    found = links(r.text)
    assert "/openapi.json" in found
    assert "http" not in r.text  # no absolute URL at all: no CDN
    assets = [u for u in found if u != "/openapi.json"]
    assert len(assets) == (3 if page == "/docs" else 2)  # js, css, favicon / js, favicon
    for url in assets:
        assert url.startswith("/static/vendor/"), url
        served = guarded.get(url)
        assert served.status_code == 200, url
        assert TYPES[url.rsplit(".", 1)[1]] in served.headers["content-type"]
        assert served.content == (STATIC_DIR / url.removeprefix("/static/")).read_bytes()


def test_swagger_ui_asks_no_online_validator(guarded):
    assert '"validatorUrl": null' in guarded.get("/docs").text


def test_static_files_need_no_key_but_the_api_still_does(guarded):
    assert guarded.get("/static/vendor/redoc/LICENSE").status_code == 200
    assert guarded.get("/static/vendor/no-such-file.js").status_code == 404
    assert guarded.get("/listModels").status_code == 401
    assert guarded.get("/docs/oauth2-redirect").status_code == 200


def test_the_viewers_are_not_operations_in_the_schema(guarded):
    paths = guarded.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if p.startswith(("/docs", "/redoc", "/static"))]


def test_pages_follow_the_root_path_a_proxy_mounts_the_api_at(tmp_path, base_models_dir):
    app = create_app(Settings(data_dir=tmp_path / "data", base_models_dir=base_models_dir))
    with TestClient(app, root_path="/llm") as client:
        for page in ("/docs", "/redoc"):
            found = links(client.get(page).text)
            assert found and all(u.startswith("/llm/") for u in found), found


def test_every_file_the_pages_use_is_vendored():
    for path in FILES.values():
        assert (STATIC_DIR / path).is_file(), path
