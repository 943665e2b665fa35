"""`llmp download MODEL`: a model's files (GET /models/{name}/files) saved with a progress bar,
resumed with a Range request when a partial file is there, and checked against sha256."""

import hashlib
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import DownloadColumn, Progress, TransferSpeedColumn

from api.cli.client import API_ERROR, Api, fail
from api.cli.follow import console

HELP = "Download a model's files (default: every listed file) into -o DIR/MODEL."


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(api: Api, model: str, entry: dict[str, Any], target: Path, progress: Progress) -> None:
    """One file into `target`: a `.part` file resumed with Range, renamed when its sum fits."""
    part = target.with_name(target.name + ".part")
    target.parent.mkdir(parents=True, exist_ok=True)
    have = part.stat().st_size if part.exists() else 0
    if have > entry["size"]:
        part.unlink()
        have = 0
    task = progress.add_task(entry["path"], total=entry["size"], completed=have)
    if have < entry["size"]:
        headers = {"Range": f"bytes={have}-"} if have else {}
        url = f"/models/{model}/files/{entry['path']}"
        with api.stream("GET", url, headers=headers, timeout=None) as r:
            mode = "ab" if r.status_code == 206 else "wb"
            if mode == "wb":
                progress.update(task, completed=0)
            with part.open(mode) as f:
                for chunk in r.iter_bytes(1 << 20):
                    f.write(chunk)
                    progress.advance(task, len(chunk))
    if _sha256(part) != entry["sha256"]:
        part.unlink()
        fail(f"{entry['path']}: sha256 does not match the server's; download it again.", 1)
    part.replace(target)


def command(api: Callable[[], Api], out: Console) -> Callable[..., None]:
    def download(
        model: str,
        file: Annotated[
            list[str] | None,
            typer.Option("--file", "-f", help="Only this listed path (repeatable)."),
        ] = None,
        kind: Annotated[
            list[str] | None, typer.Option("--kind", "-k", help="Only files of this kind.")
        ] = None,
        output: Annotated[Path, typer.Option("-o", "--output", help="Directory.")] = Path("."),
    ) -> None:
        download_model(api(), out, model, output / model, files=file, kinds=kind)

    return download


def download_model(
    api: Api,
    out: Console,
    model: str,
    root: Path,
    *,
    files: list[str] | None = None,
    kinds: list[str] | None = None,
) -> list[Path]:
    listed = api.json("GET", f"/models/{model}/files")["data"]
    chosen = [
        e for e in listed if (not files or e["path"] in files) and (not kinds or e["kind"] in kinds)
    ]
    missing = sorted(set(files or []) - {e["path"] for e in listed})
    if missing or not chosen:
        paths = ", ".join(e["path"] for e in listed)
        fail(
            f"{model!r} has no file {', '.join(missing) or 'that matches'}; it has: {paths}.",
            API_ERROR,
        )
    written = []
    with Progress(
        *Progress.get_default_columns(), DownloadColumn(), TransferSpeedColumn(), console=console
    ) as progress:
        for entry in chosen:
            rel = PurePosixPath(entry["path"])
            if rel.is_absolute() or ".." in rel.parts:
                fail(f"The server listed an unsafe path {entry['path']!r}.", API_ERROR)
            target = root.joinpath(*rel.parts)
            fetch(api, model, entry, target, progress)
            written.append(target)
    total = sum(e["size"] for e in chosen)
    out.print(f"Downloaded {len(written)} file(s), {total} bytes, into {root}.")
    return written
