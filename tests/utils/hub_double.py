"""A stand-in for the Hugging Face Hub API on a loopback port: only what HfApi.create_repo and
HfApi.create_commit call (huggingface_hub 1.33): POST /api/repos/create, /api/validate-yaml,
/api/models/{repo}/preupload/{rev} (every file `regular`, so no LFS transfer) and
/api/models/{repo}/commit/{rev} (an ndjson body: a header, then base64 files).

    hub = HubDouble().start(); ...; hub.repos["me/x"] == {"private": True, "files": {...}}
    hub.refuse = (403, "You don't have the rights")  # every call answers that
"""

import base64
import json
import threading
import time
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.utils.net import free_port


class HubDouble:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.repos: dict[str, dict[str, Any]] = {}
        self.tokens: list[str] = []  # the Authorization header of every call
        self.calls: list[str] = []
        self.refuse: tuple[int, str] | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.app = Starlette(
            routes=[
                Route("/api/repos/create", self._create, methods=["POST"]),
                Route("/api/validate-yaml", self._validate, methods=["POST"]),
                Route(
                    "/api/models/{owner}/{name}/preupload/{rev}", self._preupload, methods=["POST"]
                ),
                Route("/api/models/{owner}/{name}/commit/{rev}", self._commit, methods=["POST"]),
            ]
        )

    def start(self) -> "HubDouble":
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"the Hub double did not start on {self.url}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)

    def _seen(self, request: Request) -> JSONResponse | None:
        self.calls.append(f"{request.method} {request.url.path}")
        self.tokens.append(request.headers.get("authorization", ""))
        if self.refuse is not None:
            status, message = self.refuse
            return JSONResponse({"error": message}, status_code=status)
        return None

    async def _create(self, request: Request) -> JSONResponse:
        if (refused := self._seen(request)) is not None:
            return refused
        body = await request.json()
        repo = f"{body['organization']}/{body['name']}"
        if repo in self.repos:
            return JSONResponse(
                {"error": "You already created this model repo", "url": f"{self.url}/{repo}"}, 409
            )
        self.repos[repo] = {"private": body.get("visibility") == "private", "files": {}}
        return JSONResponse({"url": f"{self.url}/{repo}", "name": repo})

    async def _validate(self, request: Request) -> JSONResponse:
        if (refused := self._seen(request)) is not None:
            return refused
        return JSONResponse({"errors": [], "warnings": []})

    async def _preupload(self, request: Request) -> JSONResponse:
        if (refused := self._seen(request)) is not None:
            return refused
        body = await request.json()
        files = [
            {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
            for f in body["files"]
        ]
        return JSONResponse({"files": files, "commitOid": "0" * 40})

    async def _commit(self, request: Request) -> JSONResponse:
        if (refused := self._seen(request)) is not None:
            return refused
        repo = f"{request.path_params['owner']}/{request.path_params['name']}"
        if repo not in self.repos:
            return JSONResponse({"error": f"Repository {repo} not found"}, 404)
        lines = [json.loads(line) for line in (await request.body()).splitlines() if line]
        for item in lines:
            if item["key"] == "header":
                self.repos[repo]["message"] = item["value"]["summary"]
            elif item["key"] == "file":
                value = item["value"]
                self.repos[repo]["files"][value["path"]] = base64.b64decode(value["content"])
        return JSONResponse(
            {"commitUrl": f"{self.url}/{repo}/commit/{'a' * 40}", "commitOid": "a" * 40}
        )
