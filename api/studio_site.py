"""The Studio (/studio): a browser UI over this API, served from files in api/studio/.

Plain HTML, CSS and JavaScript modules (no build step); its one library, uPlot for the loss
curves, is vendored under api/static/vendor/ by scripts/vendor_js.py. The pages hold no data:
they are open without the API key (api/auth.py), and the scripts send the key the user enters
as the bearer key on every API call, as any other client does. `/` links to it and the docs.
"""

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

STUDIO_DIR = Path(__file__).resolve().parent / "studio"
STUDIO_URL = "/studio"
HOME_URL = "/"

HOME = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Local LLM platform</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 3rem auto">
<h1>Local LLM platform</h1>
<ul>
<li><a href="studio/">Studio</a>: models, playground, documents, fine-tuning, datasets, jobs</li>
<li><a href="docs">API reference (Swagger UI)</a> and <a href="redoc">ReDoc</a></li>
<li><a href="openapi.json">OpenAPI schema</a></li>
</ul></body></html>
"""


def install(app: FastAPI) -> None:
    # html=True: /studio/ answers index.html (and /studio redirects there)
    app.mount(STUDIO_URL, StaticFiles(directory=STUDIO_DIR, html=True), name="studio")

    @app.get(HOME_URL, include_in_schema=False)
    def home() -> HTMLResponse:
        return HTMLResponse(HOME)
