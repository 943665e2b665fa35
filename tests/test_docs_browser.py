"""/docs and /redoc render in a real browser on a host without internet.

The API runs as `make run` starts it (uvicorn in its own process); Debian's Chromium, driven by
Playwright, may reach nothing but that process (tests/utils/browser.py).
"""

import httpx
import pytest

from tests.utils.api_process import ApiProcess
from tests.utils.browser import OfflinePage

KEY = "docs-browser-key-0123456789"


@pytest.fixture(scope="module", params=[None, KEY], ids=["no-key", "api-key"])
def api(request, tmp_path_factory):
    root = tmp_path_factory.mktemp("docs-api")
    (root / "models").mkdir()  # no base model: the docs need none
    env = {"LLM_API_KEY": request.param} if request.param else {}
    process = ApiProcess(root / "data", root / "models", **env).start()
    yield process
    process.stop()


@pytest.fixture
def offline(browser, api):
    page = OfflinePage(browser, api.port)
    yield page
    page.context.close()


def schema_paths(api: ApiProcess) -> dict:
    return httpx.get(f"{api.url}/openapi.json").json()["paths"]


def operations(api: ApiProcess) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in schema_paths(api).items() for method in item}


def test_swagger_ui_lists_every_operation_with_no_network(api, offline):
    offline.open("/docs", until=".opblock-summary-path")
    shown = offline.page.eval_on_selector_all(
        ".opblock",
        """els => els.map(e => [
            e.querySelector('.opblock-summary-method').textContent,
            e.querySelector('.opblock-summary-path').dataset.path])""",
    )
    assert {(m, p) for m, p in shown} == operations(api)
    assert len(shown) == len(operations(api))
    assert {("POST", "/generate"), ("POST", "/createModel")} <= {(m, p) for m, p in shown}
    assert offline.page.title() == "Local LLM platform - Swagger UI"
    offline.check_offline()


def test_redoc_renders_every_operation_with_no_network(api, offline):
    offline.open("/redoc", until="[data-section-id*='operation/']")
    title = offline.page.text_content("h1")
    assert title is not None and title.startswith("Local LLM platform")
    sections = offline.page.eval_on_selector_all(  # "tag/models/operation/<id>", "operation/<id>"
        "[data-section-id*='operation/']", "els => els.map(e => e.dataset.sectionId)"
    )
    ids = {op["operationId"] for item in schema_paths(api).values() for op in item.values()}
    assert {s.rsplit("operation/", 1)[1] for s in sections} == ids
    offline.check_offline()


def test_home_links_the_studio_which_asks_for_a_key_only_when_one_is_set(api, offline):
    """The Studio with no data behind it: with no key it opens at once; with a key it asks."""
    offline.open("/", until="a[href='studio/']")
    offline.page.click("a[href='studio/']")
    if api.env.get("LLM_API_KEY"):
        offline.wait_for("#key-dialog[open]", "for the key")
        assert "needs its key" in offline.page.text_content("#key-message")
        offline.failed.clear()  # the 401 that made it ask
    else:
        offline.wait_for("main table", "on the models page")
        assert offline.page.locator("#key-dialog[open]").count() == 0
    assert offline.page.title() == "Models - Studio"
    offline.check_offline()
