"""Headless Debian Chromium driven by Playwright, reaching nothing but the API under test.

One browser for the whole session (`browser`); `OfflinePage` is a context whose requests may
only go to the API: Playwright aborts (and records) every request to another host, and
Chromium's resolver knows no other host either. Pages open the API under a host name that is
not `localhost` (mapped to 127.0.0.1), since Swagger UI behaves otherwise for local URLs.
Chromium comes from scripts/setup_chromium.sh (`make test` runs it); without it the tests
fail rather than skip.
"""

from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import sync_playwright

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
TIMEOUT_MS = 60_000  # two cores shared with other work: rendering can be slow


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/setup_chromium.sh (`make test` does)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield chromium
        chromium.close()


class OfflinePage:
    """A page whose requests reach only the API; what else it tried, and what failed."""

    def __init__(self, browser, port: int, **context_options):
        self.origin = f"http://{HOST}:{port}"
        self.context = browser.new_context(**context_options)
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
        self.wait_for(until, path)

    def wait_for(self, selector: str, where: str = "") -> None:
        try:
            self.page.wait_for_selector(selector)
        except PlaywrightTimeout:
            pytest.fail(
                f"{selector!r} never showed {where}: blocked {self.blocked}, "
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
