"""`llmp`: models, documents, generate, chat, fine-tune, jobs, datasets and downloads from a
terminal, against a running service (`--url`, LLM_URL; key from LLM_API_KEY).

Reference: docs/cli.md. The HTTP side and the exit codes: api/cli/client.py.
"""

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from api.cli import downloads, finetune
from api.cli.client import Api, fail, run
from api.cli.follow import follow
from api.cli.options import parse_sets

app = typer.Typer(
    help="Command line of the local LLM platform: talks to a running service.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
models_app = typer.Typer(help="Bases and variants.", no_args_is_help=True)
docs_app = typer.Typer(help="A model's PDF documents.", no_args_is_help=True)
jobs_app = typer.Typer(help="Fine-tuning, export and dataset jobs.", no_args_is_help=True)
datasets_app = typer.Typer(help="Training data written by a teacher model.", no_args_is_help=True)
for sub, name in (
    (models_app, "models"),
    (docs_app, "docs"),
    (jobs_app, "jobs"),
    (datasets_app, "datasets"),
):
    app.add_typer(sub, name=name)

out = Console()  # results on stdout


class State:
    api: Api


state = State()


@app.callback()
def _global(
    url: Annotated[
        str | None, typer.Option(help="The service (default: $LLM_URL or http://127.0.0.1:8000).")
    ] = None,
) -> None:
    state.api = Api(url)


def _json(data: Any) -> None:
    out.print_json(json.dumps(data))


def _table(rows: list[dict[str, Any]], columns: list[str], title: str) -> None:
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if row.get(c) is None else str(row.get(c)) for c in columns))
    out.print(table)


AsJson = Annotated[bool, typer.Option("--json", help="Print the API's JSON.")]


# --- models ---------------------------------------------------------------------------------
@models_app.command("list")
def models_list(as_json: AsJson = False) -> None:
    """List base models and variants."""
    body = state.api.json("GET", "/listModels")
    if as_json:
        return _json(body)
    _table(body["data"], ["name", "kind", "base_model", "source", "created_at"], "Models")


@models_app.command("create")
def models_create(
    name: str,
    base: Annotated[str | None, typer.Option("--base", help="Base model.")] = None,
    system: Annotated[str | None, typer.Option("--system", help="System prompt.")] = None,
    template: Annotated[str | None, typer.Option(help="Jinja chat template.")] = None,
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="Default option KEY=VALUE.")
    ] = None,
) -> None:
    """Create a variant: a base plus a system prompt and default options."""
    spec = {"name": name, "base_model": base, "system_prompt": system, "template": template}
    body: dict[str, Any] = {k: v for k, v in spec.items() if v is not None}
    body["parameters"] = parse_sets(param or [])
    created = state.api.json("POST", "/createModel", json=body)
    out.print(f"Created {created['name']} (base {created['base_model']}).")


@models_app.command("delete")
def models_delete(name: str) -> None:
    """Delete a variant with its documents and exported files."""
    out.print(state.api.json("DELETE", "/deleteModel", params={"name": name})["message"])


# --- documents ------------------------------------------------------------------------------
@docs_app.command("import")
def docs_import(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="A PDF.")],
    model: Annotated[str, typer.Option("--model", "-m", help="The model it is for.")],
    name: Annotated[str | None, typer.Option(help="Document name (default: file name).")] = None,
) -> None:
    """Import a PDF for a model (replaces a document of the same name)."""
    with file.open("rb") as f:
        body = state.api.json(
            "POST",
            "/importDocument",
            files={"file": (file.name, f, "application/pdf")},
            data={"model": model, **({"name": name} if name else {})},
        )
    replaced = " (replaced)" if body.get("replaced") else ""
    out.print(f"Imported {body['name']}{replaced}: {body.get('chunks', '?')} chunks.")


@docs_app.command("list")
def docs_list(
    model: Annotated[str, typer.Option("--model", "-m")], as_json: AsJson = False
) -> None:
    """List a model's documents."""
    body = state.api.json("GET", "/listDocuments", params={"model": model})
    if as_json:
        return _json(body)
    _table(
        body["data"], ["name", "pages", "chunks", "size", "imported_at"], f"Documents of {model}"
    )


@docs_app.command("delete")
def docs_delete(
    model: Annotated[str, typer.Option("--model", "-m")],
    name: Annotated[str | None, typer.Argument(help="The document (or --all).")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Delete all of the model's.")] = False,
) -> None:
    """Delete one document of a model, or all of them."""
    if (name is None) == (not all_):
        fail("Give a document name or --all, not both.")
    if all_:
        body = state.api.json("DELETE", "/deleteAllDocuments", params={"model": model})
    else:
        body = state.api.json(
            "DELETE", "/deleteDocument", params={"model": model, "document": name}
        )
    out.print(body["message"])


# --- generate and chat ----------------------------------------------------------------------
@app.command()
def generate(
    model: str,
    prompt: str,
    system: Annotated[str | None, typer.Option(help="System prompt for this request.")] = None,
    doc: Annotated[
        list[str] | None, typer.Option("--doc", help="Answer from this document.")
    ] = None,
    all_docs: Annotated[bool, typer.Option("--all-docs", help="Use all documents.")] = False,
    option: Annotated[
        list[str] | None, typer.Option("--option", "-o", help="Generation option KEY=VALUE.")
    ] = None,
    no_stream: Annotated[bool, typer.Option("--no-stream", help="Wait for the whole.")] = False,
) -> None:
    """One answer, streamed as it is written; sources follow when documents were used."""
    body: dict[str, Any] = {
        "model": model,
        "prompt": prompt,
        "options": parse_sets(option or []),
        "stream": not no_stream,
        "all_documents": all_docs,
    }
    if system is not None:
        body["system"] = system
    if doc:
        body["documents"] = doc
    if no_stream:
        last = state.api.json("POST", "/generate", json=body)
        sys.stdout.write(last["response"])
    else:
        last = {}
        with state.api.stream("POST", "/generate", json=body) as r:
            for line in r.iter_lines():
                if not line:
                    continue
                last = json.loads(line)
                if "error" in last:
                    fail(f"Error: {last['error']}", 1)
                sys.stdout.write(last.get("response", ""))
                sys.stdout.flush()
    sys.stdout.write("\n")
    for source in last.get("sources") or []:
        out.print(f"[dim]source: {source.get('document')} p.{source.get('page', '?')}[/dim]")


def _chat_turn(model: str, messages: list[dict[str, str]], options: dict[str, Any]) -> str:
    body = {**options, "model": model, "messages": messages, "stream": True}
    reply = []
    with state.api.stream("POST", "/v1/chat/completions", json=body) as r:
        for line in r.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if "error" in chunk:
                fail(f"Error: {chunk['error'].get('message', chunk['error'])}", 1)
            for choice in chunk.get("choices", []):
                text = (choice.get("delta") or {}).get("content") or ""
                reply.append(text)
                sys.stdout.write(text)
                sys.stdout.flush()
    sys.stdout.write("\n")
    return "".join(reply)


@app.command()
def chat(
    model: str,
    message: Annotated[
        list[str] | None,
        typer.Option("--message", "-m", help="One-shot: send these turns, print the replies."),
    ] = None,
    system: Annotated[str | None, typer.Option(help="System prompt.")] = None,
    option: Annotated[
        list[str] | None,
        typer.Option("--option", "-o", help="OpenAI request field KEY=VALUE (max_tokens=64)."),
    ] = None,
) -> None:
    """Chat with a model (an empty line or Ctrl-D ends it), or send -m turns and exit."""
    messages = [{"role": "system", "content": system}] if system else []
    turns = iter(message) if message else None
    options = parse_sets(option or [])
    while True:
        if turns is not None:
            text = next(turns, None)
        else:
            try:
                text = input(">>> ")
            except EOFError:
                text = None
        if not text:
            return
        messages.append({"role": "user", "content": text})
        messages.append({"role": "assistant", "content": _chat_turn(model, messages, options)})


# --- jobs -----------------------------------------------------------------------------------
JOB_COLUMNS = ["id", "kind", "status", "model_name", "base_model", "created_at"]


@jobs_app.command("list")
def jobs_list(as_json: AsJson = False) -> None:
    """Jobs, newest first."""
    body = state.api.json("GET", "/jobs")
    if as_json:
        return _json(body)
    _table(body["data"], JOB_COLUMNS, "Jobs")


@jobs_app.command("show")
def jobs_show(job_id: str) -> None:
    """A job's state, progress and metrics (JSON)."""
    _json(state.api.json("GET", f"/jobs/{job_id}"))


@jobs_app.command("follow")
def jobs_follow(job_id: str) -> None:
    """Follow a job's events with a progress bar until it ends."""
    job = follow(state.api, job_id)
    out.print(f"Job {job_id} {job['status']}.")


@jobs_app.command("cancel")
def jobs_cancel(job_id: str) -> None:
    """Cancel a queued or running job."""
    out.print(f"Job {job_id} {state.api.json('POST', f'/jobs/{job_id}/cancel')['status']}.")


@jobs_app.command("export")
def jobs_export(
    job_id: str,
    model_name: Annotated[str | None, typer.Option(help="Register under this name.")] = None,
    mode: Annotated[str | None, typer.Option(help="merged or adapter.")] = None,
    quantization: Annotated[list[str] | None, typer.Option("--quantization", "-q")] = None,
    no_follow: Annotated[bool, typer.Option("--no-follow")] = False,
) -> None:
    """Export a finished job's adapter again."""
    body = {"model_name": model_name, "export": mode, "quantization": quantization}
    job = state.api.json(
        "POST", f"/jobs/{job_id}/export", json={k: v for k, v in body.items() if v}
    )
    out.print(f"Export job {job['id']} {job['status']}.")
    if not no_follow:
        follow(state.api, job["id"])


# --- Hub push -------------------------------------------------------------------------------
@app.command()
def push(
    model: str,
    repo_id: Annotated[str, typer.Argument(help="The Hub repo, owner/name.")],
    private: Annotated[
        bool, typer.Option("--private/--public", help="Visibility of a new repo.")
    ] = True,
    file: Annotated[
        list[str] | None,
        typer.Option("--file", "-f", help="A path from `GET /models/MODEL/files` (repeat)."),
    ] = None,
    no_follow: Annotated[bool, typer.Option("--no-follow")] = False,
) -> None:
    """Push a model's files and a model card to a Hugging Face Hub repo (the server's
    HF_TOKEN), then follow the job."""
    body: dict[str, Any] = {"repo_id": repo_id, "private": private}
    if file:
        body["files"] = file
    job = state.api.json("POST", f"/models/{model}/push", json=body)
    print(job["id"])
    if not no_follow:
        done = follow(state.api, job["id"])
        metrics = done.get("metrics") or {}
        out.print(f"Pushed {len(metrics.get('files', []))} files to {metrics.get('url', repo_id)}.")


# --- datasets -------------------------------------------------------------------------------
@datasets_app.command("generate")
def datasets_generate(
    teacher: Annotated[str, typer.Option(help="Model writing the pairs, or openai:<model>.")],
    seed_file: Annotated[
        Path | None, typer.Option(exists=True, dir_okay=False, help="Seed tasks (CSV/JSONL).")
    ] = None,
    count: Annotated[int, typer.Option(help="Pairs to produce.")] = 50,
    model: Annotated[str | None, typer.Option(help="Documents mode: this model's PDFs.")] = None,
    prompt_file: Annotated[
        list[Path] | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="A prompt template per topic ({seed_examples}, {count}, {guidance}); repeat.",
        ),
    ] = None,
    concurrency: Annotated[
        int | None, typer.Option(help="Teacher requests at once (openai: teachers, 1-16).")
    ] = None,
    requests_per_minute: Annotated[
        float | None, typer.Option(help="Rate limit for an openai: teacher.")
    ] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Any other spec field KEY=VALUE.")
    ] = None,
    no_follow: Annotated[bool, typer.Option("--no-follow")] = False,
) -> None:
    """Start a dataset job, then follow it (the dataset id is the job id)."""
    data: dict[str, Any] = {"teacher": teacher, "count": str(count)}
    if model:
        data["model"] = model
    if concurrency is not None:
        data["concurrency"] = str(concurrency)
    if requests_per_minute is not None:
        data["requests_per_minute"] = str(requests_per_minute)
    for key, value in parse_sets(set_ or [], typed=False).items():
        data[key] = value
    files: list[tuple[str, tuple[str, bytes, str]]] = []
    if seed_file:
        files.append(("seed_file", (seed_file.name, seed_file.read_bytes(), "text/plain")))
    for prompt in prompt_file or []:
        files.append(("prompt_file", (prompt.name, prompt.read_bytes(), "text/plain")))
    job = state.api.json("POST", "/datasets/generate", data=data, files=files or None)
    print(job["id"])
    if not no_follow:
        follow(state.api, job["id"])
        report = state.api.json("GET", f"/datasets/{job['id']}")
        speed = report.get("throughput") or {}
        out.print(
            f"Dataset {job['id']}: {report.get('rows', '?')} pairs; "
            f"{speed.get('requests', '?')} teacher requests, "
            f"{speed.get('pairs_per_minute', '?')} pairs/min, "
            f"{speed.get('rate_limited', 0)} answered 429."
        )


@datasets_app.command("download")
def datasets_download(
    dataset_id: str,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="File to write.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="jsonl or csv.")] = "jsonl",
) -> None:
    """Save a finished dataset (JSONL or CSV) to a file, or print it."""
    body = state.api.request(
        "GET", f"/datasets/{dataset_id}/download", params={"format": fmt}
    ).content
    if output is None:
        sys.stdout.buffer.write(body)
        return
    output.write_bytes(body)
    out.print(f"Wrote {output} ({len(body)} bytes).")


app.command("finetune", help=finetune.HELP)(finetune.command(lambda: state.api, out))
app.command("download", help=downloads.HELP)(downloads.command(lambda: state.api, out))


def main() -> None:
    run(app)


if __name__ == "__main__":
    main()
