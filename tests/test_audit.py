"""`make audit` (scripts/audit.sh) against a local OSV-compatible advisory service.

The real databases (pypi.org's JSON API, api.osv.dev) are not reachable from CI; a small
server speaking OSV's query protocol stands in, so each outcome is checked: the database
does not answer (exit 2, never a silent pass), an installed package has an advisory
(exit 1, named), nothing is known (exit 0).
"""

import json
import os
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import version

import pytest

from api.config import REPO_ROOT

SCRIPT = REPO_ROOT / "scripts" / "audit.sh"


def _advisory(name: str, fixed: str, ident: str) -> dict:
    return {
        "id": ident,
        "summary": f"test advisory for {name}",
        "affected": [
            {
                "package": {"name": name, "ecosystem": "PyPI"},
                "ranges": [
                    {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": fixed}]}
                ],
            }
        ],
    }


class _Advisories(BaseHTTPRequestHandler):
    known: dict[tuple[str, str], dict] = {}
    asked: list[tuple[str, str]] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        query = json.loads(self.rfile.read(int(self.headers["content-length"])))
        key = (query["package"]["name"], query["version"])
        self.asked.append(key)
        body = json.dumps({"vulns": [self.known[key]]} if key in self.known else {}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def advisories():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Advisories)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Advisories.known, _Advisories.asked = {}, []
    yield server, _Advisories.known
    server.shutdown()


def _audit(url: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable, "AUDIT_SERVICE": "osv", "AUDIT_OSV_URL": url}
    return subprocess.run(
        ["bash", str(SCRIPT)], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600
    )


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_database_fails_and_says_so():
    result = _audit(f"http://127.0.0.1:{_closed_port()}/v1/query")
    assert result.returncode == 2
    assert "could not be reached or gave no answer" in result.stderr
    assert "auditing" not in result.stdout  # nothing was audited, and nothing passed


def test_database_that_knows_nothing_fails_too(advisories):
    server, _ = advisories  # answers, but not about the canary: not a usable database
    result = _audit(f"http://127.0.0.1:{server.server_port}/v1/query")
    assert result.returncode == 2
    assert "could not be reached or gave no answer" in result.stderr


def test_known_advisory_in_an_installed_package_fails_the_audit(advisories):
    server, known = advisories
    known[("jinja2", "2.10")] = _advisory("jinja2", "2.10.1", "CANARY-1")
    known[("fastapi", version("fastapi"))] = _advisory("fastapi", "999.0", "TEST-2026-1")
    result = _audit(f"http://127.0.0.1:{server.server_port}/v1/query")
    assert result.returncode == 1, result.stderr
    assert "TEST-2026-1" in result.stdout and "fastapi" in result.stdout


def test_clean_environment_passes(advisories):
    server, known = advisories
    known[("jinja2", "2.10")] = _advisory("jinja2", "2.10.1", "CANARY-1")
    result = _audit(f"http://127.0.0.1:{server.server_port}/v1/query")
    assert result.returncode == 0, result.stderr
    assert "==> no known vulnerabilities" in result.stdout
    # every installed distribution was looked up, torch (2.13.0+cpu) by its public version
    asked = dict(_Advisories.asked)
    assert asked["torch"] == version("torch").split("+")[0]
    assert asked["chromadb"] == version("chromadb") and len(asked) > 100
    assert "local-llm-platform" not in asked  # the project itself, installed editable
