"""/docs and /redoc render in a real browser on a host without internet.

The API runs as `make run` starts it (uvicorn in its own process); Debian's Chromium, driven by
Playwright, may reach nothing but that process: Playwright aborts (and records) every request
to another host, and Chromium's resolver knows no other host either. The page is opened under
a host name that is not `localhost` (mapped to 127.0.0.1), since Swagger UI behaves otherwise
for local URLs. Chromium comes from scripts/setup_chromium.sh (`make test` runs it); without it
this test fails rather than skips.
"""

from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import sync_playwright

from tests.utils.api_process import ApiProcess

CHROMIUM = Path("/usr/bin/chromium")
HOST = "llm-api.test"  # resolved to 127.0.0.1 by Chromium alone; .test is never a real domain
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    f"--host-resolver-rules=MAP {HOST} 127.0.0.1, MAP * ~NOTFOUND",
]
KEY = "docs-browser-key-0123456789"
TIMEOUT_MS = 60_000  # two cores shared with other work: rendering the schema can be slow


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/setup_chromium.sh (`make test` does)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module", params=[None, KEY], ids=["no-key", "api-key"])
def api(request, tmp_path_factory):
    root = tmp_path_factory.mktemp("docs-api")
    (root / "models").mkdir()  # no base model: the docs need none
    env = {"LLM_API_KEY": request.param} if request.param else {}
    process = ApiProcess(root / "data", root / "models", **env).start()
    yield process
    process.stop()


class OfflinePage:
    """A page whose requests reach only the API; what else it tried, and what failed."""

    def __init__(self, browser, port: int):
        self.origin = f"http://{HOST}:{port}"
        self.context = browser.new_context()
        self.context.set_default_timeout(TIMEOUT_MS)
        self.blocked: list[str] = []
        self.failed: list[str] = []
        self.errors: list[str] = []
        self.context.route("**/*", self._only_the_api)
        self.page = self.context.new_page()
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("requestfailed", lambda r: self.failed.append(f"{r.url}: {r.failure}"))
        self.page.on(
            "response", lambda r: r.status >= 400 and self.failed.append(f"{r.url}: {r.status}")
        )

    def _only_the_api(self, route) -> None:
        url = route.request.url
        if url.startswith(self.origin + "/"):
            route.continue_()
        else:
            self.blocked.append(url)
            route.abort("internetdisconnected")

    def open(self, path: str, until: str) -> None:
        """Load `path`, then wait for `until` (a selector) to show; what went wrong if not."""
        self.page.goto(self.origin + path, wait_until="load")
        try:
            self.page.wait_for_selector(until)
        except PlaywrightTimeout:
            pytest.fail(
                f"{until!r} never showed on {path}: blocked {self.blocked}, "
                f"failed {self.failed}, errors {self.errors}"
            )

    def outside_links(self) -> list[str]:
        """src/href attributes of the rendered page that point anywhere but the API."""
        urls = self.page.eval_on_selector_all(
            "[src], link[href], script[src], img[src]",
            "els => els.map(e => e.src || e.href).filter(Boolean)",
        )
        return [
            u
            for u in urls
            if urlsplit(u).scheme in ("http", "https") and not u.startswith(self.origin + "/")
        ]

    def check_offline(self) -> None:
        assert self.blocked == []
        assert self.outside_links() == []
        assert self.failed == []
        assert self.errors == []


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
