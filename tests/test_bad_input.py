"""Bad input, catalogued (issue #8): every case answers a 4xx whose `detail` says what to
fix, and leaves nothing behind: no file under DATA_DIR (uploads, documents, jobs), no
variant, no document row, no job row, no Chroma chunk (`leftovers` looks at all of them).

Cases already covered elsewhere, and not repeated here:
- tests/routes/test_documents.py: a text file renamed .pdf, truncated, encrypted and
  text-less PDFs, 413 with and without Content-Length, unknown model and document (404),
  file names with paths, a PDF that hangs the parser;
- tests/routes/test_jobs.py: empty file, missing columns, unknown format, Latin-1 CSV, rows
  over max_len, absurd hyperparameters, taken and unknown names, 413 over
  LLM_MAX_DATASET_BYTES, unknown job (404);
- tests/routes/test_models.py: bad names on create, unknown model and base on delete;
- tests/rag/test_pdf.py: the parser killed at its time limit and at its memory limit (a
  decompression bomb under pypdf's own limit); tests/finetune/test_data.py: file formats.
"""

import sqlite3
import threading
import time
from contextlib import contextmanager
from types import SimpleNamespace

import httpx
import pytest
import uvicorn

from api.config import Settings
from api.finetune.data import MAX_FIELD_CHARS, load_examples
from api.main import create_app
from api.rag import documents as documents_module
from api.rag.documents import DOC_NAME_RULE
from tests.utils.pdfs import MENU, bomb_pdf_bytes, inflating_pdf_bytes, looping_pdf_bytes, pdf_bytes
from tests.utils.tiny_model import jsonl, qa_csv

NAME_RULE = "use 1-63 characters: lowercase ASCII letters, digits"
# Names that must never become a file, directory or collection name, nor pass for another.
TRICKY_NAMES = [
    "../x",
    "..",
    "/etc/passwd",
    "a/b",
    "a\\b",
    "x\x00y",
    "pir\u0430te",  # Cyrillic a
    "\uff50\uff49\uff52\uff41\uff54\uff45",  # fullwidth "pirate"
    "\ufb01sh",  # the "fi" ligature
    "pirate.",
    "pirate ",
    " pirate",
    "pirate\n",
    "x" * 64,
]
DOCUMENT_TRICKS = [
    "../x.pdf",
    "..",
    "/etc/passwd",
    "a/b.pdf",
    "a\\b.pdf",
    "x\x00y.pdf",
    "men\u0443.pdf",  # Cyrillic u
    "\uff4d\uff45\uff4e\uff55.pdf",
    "\ufb01le.pdf",
    "menu.pdf.",
    "menu.pdf ",
    " menu.pdf",
    "menu.pdf\n",
    "x" * 128,
]


# ------------------------------------------------------------------------------ helpers


def leftovers(client) -> dict[str, object]:
    """What DATA_DIR holds besides the databases, their locks and Chroma's own files: every file and
    directory, variant, document row, job row and Chroma chunk."""
    settings: Settings = client.app.state.settings
    data, chroma = settings.data_dir, settings.chroma_path
    assert chroma is not None
    paths = sorted(
        str(p.relative_to(data))
        for p in data.rglob("*")
        if p != chroma
        and chroma not in p.parents
        and not p.name.endswith((".sqlite", ".sqlite-wal", ".sqlite-shm", ".sqlite-journal"))
        and p.name not in ("documents", "jobs", ".incoming", "locks")
        and p.parent.name != "locks"  # api/db's lock files
        and p != client.app.state.documents.incoming_dir
    )
    with sqlite3.connect(data / "documents.sqlite") as db:
        documents = db.execute("SELECT model, name FROM documents").fetchall()
    return {
        "paths": paths,
        "documents": documents,
        "chunks": _chunks(client),
        "variants": [v.name for v in client.app.state.registry.list()],
        "jobs": [j.id for j in client.app.state.job_store.list(limit=1000)],
    }


def _chunks(client) -> int:
    store = client.app.state.documents._store  # only when an import has built it
    if store is None:
        return 0
    return sum(c.count() for c in store.client.list_collections())


NOTHING = {"paths": [], "documents": [], "chunks": 0, "variants": [], "jobs": []}


def variant_only(name: str) -> dict[str, object]:
    return {**NOTHING, "variants": [name]}


def upload(client, filename, data, model="hr", **fields):
    return client.post(
        "/importDocument",
        files={"file": (filename, data, "application/pdf")},
        data={"model": model, **fields},
    )


def fine_tune(client, train: bytes, filename="train.csv", eval_file=None, **fields):
    files = {"train_file": (filename, train, "text/csv")}
    if eval_file is not None:
        files["eval_file"] = ("eval.csv", eval_file, "text/csv")
    return client.post(
        "/fine_tune_model", files=files, data={"model_name": "tuned", "max_steps": "2", **fields}
    )


def problem(r, status: int) -> str:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    return r.json()["detail"]


class Counted:
    """A request body sent chunked (no Content-Length); counts the bytes taken from it."""

    def __init__(self, head: bytes, filler: int, tail: bytes, chunk: int = 1 << 20):
        self.head, self.filler, self.tail, self.chunk = head, filler, tail, chunk
        self.sent = 0

    def __iter__(self):
        block = b"x" * self.chunk
        for piece in (self.head, *[block] * (self.filler // self.chunk), self.tail):
            self.sent += len(piece)
            yield piece


def multipart(
    fields: dict[str, str],
    file_field: str,
    filename: str,
    filler: int,
    file_head: bytes = b"",
    file_tail: bytes = b"",
) -> Counted:
    head = b"".join(
        b'--B\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n' % (k.encode(), v.encode())
        for k, v in fields.items()
    )
    head += (
        b'--B\r\nContent-Disposition: form-data; name="%s"; filename="%s"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n" % (file_field.encode(), filename.encode())
    )
    return Counted(head + file_head, filler, file_tail + b"\r\n--B--\r\n")


MULTIPART = {"content-type": "multipart/form-data; boundary=B"}


@pytest.fixture
def hr(make_client):
    client = make_client(rag_alternative_queries=0, rag_parse_timeout_s=20)
    assert client.post("/createModel", json={"name": "hr"}).status_code == 201
    return client


@pytest.fixture
def quiet(make_client):
    """A client whose job runner is stopped: an accepted job stays queued."""
    client = make_client()
    client.app.state.runner.stop()
    return client


# ------------------------------------------------------------------ uploads over limits


@contextmanager
def serving(app):
    """`app` served by uvicorn on a loopback port in a thread (a real socket: the
    TestClient reads a whole request body before the app sees any of it)."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def _post_refused(http: httpx.Client, path: str, body: Counted) -> str | None:
    """The 413's detail; None when the server's close reset the connection before the
    client read the answer (it stopped reading, which is the point)."""
    try:
        r = http.post(path, content=body, headers=MULTIPART)
    except (httpx.ReadError, httpx.RemoteProtocolError):
        return None
    return problem(r, 413)


def test_chunked_uploads_over_the_limit_stop_being_read(base_models_dir, tmp_path):
    """100 MB sent chunked (no Content-Length) to the PDF import and to the training upload:
    each is refused with 413 and stops being read a little past its limit (the client gets
    to send what the socket buffers hold, a few MB, not the 100 MB)."""
    app = create_app(
        Settings(
            data_dir=tmp_path / "data",
            base_models_dir=base_models_dir,
            rag_max_upload_bytes=64 * 1024,
            max_dataset_bytes=1 << 20,
        )
    )
    with serving(app) as url, httpx.Client(base_url=url, timeout=120) as http:
        assert http.post("/createModel", json={"name": "hr"}).status_code == 201
        pdf = multipart({"model": "hr"}, "file", "big.pdf", 100 << 20, file_head=b"%PDF-1.7\n")
        assert _post_refused(http, "/importDocument", pdf) in (
            None,
            (
                "The upload is larger than the limit of 65536 bytes (LLM_RAG_MAX_UPLOAD_BYTES); "
                "split the PDF or raise the limit."
            ),
        )
        csv = multipart(
            {"model_name": "tuned"},
            "train_file",
            "train.csv",
            100 << 20,
            file_head=b"input,output\nQ,",
        )
        assert _post_refused(http, "/fine_tune_model", csv) in (
            None,
            (
                f"The request body is larger than the limit of {2 * (1 << 20) + 256 * 1024} bytes "
                "(two files of LLM_MAX_DATASET_BYTES each and the form fields; upload smaller "
                "files)."
            ),
        )
        assert pdf.sent < 40 << 20 and csv.sent < 40 << 20, (pdf.sent, csv.sent)
        assert http.get("/listModels").status_code == 200  # the server is fine
    assert leftovers(SimpleNamespace(app=app)) == variant_only("hr")


def test_declared_bodies_over_the_limit_are_refused_before_reading(make_client):
    client = make_client(max_dataset_bytes=1 << 20)
    r = client.post(
        "/fine_tune_model", content=b"x", headers={**MULTIPART, "content-length": str(100 << 20)}
    )
    assert "larger than the limit of 2359296 bytes" in problem(r, 413)
    r = client.post(
        "/generate",
        content=b"x",
        headers={"content-type": "application/json", "content-length": str(9 << 20)},
    )
    assert problem(r, 413) == (
        "The request body is larger than the limit of 8388608 bytes "
        "(a JSON request body; send less)."
    )
    csv = multipart({"model_name": "tuned"}, "train_file", "train.csv", 3 << 20)
    r = client.post("/fine_tune_model", content=iter(csv), headers=MULTIPART)  # chunked
    assert problem(r, 413) == (
        "The request body is larger than the limit of 2359296 bytes "
        "(two files of LLM_MAX_DATASET_BYTES each and the form fields; "
        "upload smaller files)."
    )
    r = client.post(
        "/generate",
        headers={"content-type": "application/json"},
        content=iter([b'{"model": "smollm2-135m", "prompt": "', b"x" * (9 << 20), b'"}']),
    )  # chunked: cut off while it arrives
    assert problem(r, 413) == (
        "The request body is larger than the limit of 8388608 bytes "
        "(a JSON request body; send less)."
    )
    r = client.post(
        "/v1/chat/completions",
        content=b"x",
        headers={"content-type": "application/json", "content-length": str(9 << 20)},
    )
    assert r.status_code == 413
    assert "larger than the limit of 8388608 bytes" in r.json()["error"]["message"]
    assert leftovers(client) == NOTHING


def test_eval_file_over_the_limit_is_413(quiet):
    small = qa_csv(3)
    client = quiet
    client.app.state.settings.max_dataset_bytes = 2048
    r = fine_tune(client, small, eval_file=qa_csv(200))
    assert problem(r, 413) == (
        "eval_file is larger than the 2048-byte limit "
        "(LLM_MAX_DATASET_BYTES); upload a smaller file."
    )
    assert leftovers(client) == NOTHING


# ------------------------------------------------------------------ wrong content types

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
ZIP = b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + bytes(range(256)) * 8


@pytest.mark.parametrize("filename, data", [("photo.pdf", PNG), ("archive.pdf", ZIP)])
def test_files_renamed_pdf_are_422(hr, filename, data):
    r = upload(hr, filename, data)
    assert problem(r, 422) == (
        f"{filename!r} is not a PDF (it does not start with %PDF-); upload a PDF file."
    )
    assert leftovers(hr) == variant_only("hr")


def test_pdf_header_over_garbage_is_422(hr):
    r = upload(hr, "fake.pdf", b"%PDF-1.7\n" + PNG)
    assert problem(r, 422).startswith("'fake.pdf' is not a readable PDF (")
    assert leftovers(hr) == variant_only("hr")


@pytest.mark.parametrize(
    "data, kind",
    [
        (PNG, "a PNG image"),
        (ZIP, "a ZIP archive (.xlsx and .docx files are ZIPs)"),
        (pdf_bytes(MENU), "a PDF"),
    ],
)
def test_binary_files_as_training_data_are_422(quiet, data, kind):
    r = fine_tune(quiet, data)
    assert problem(r, 422) == (
        f"train_file is {kind}, not CSV, JSON or JSONL text; export "
        "the data as UTF-8 CSV or JSONL and upload that."
    )
    r = fine_tune(quiet, qa_csv(5), eval_file=data)
    assert problem(r, 422).startswith(f"eval_file is {kind}, not CSV")
    assert leftovers(quiet) == NOTHING


def test_nul_bytes_in_training_data_are_422(quiet):
    r = fine_tune(quiet, b"input,output\nQ\x00\x00,A\n" * 3)
    assert problem(r, 422).startswith(
        "train_file contains NUL characters: it is a binary "
        "file (or UTF-16 without a byte-order mark)"
    )
    assert leftovers(quiet) == NOTHING


# ----------------------------------------------------------- PDF bombs and looping PDFs


def test_pdf_inflating_past_the_parsers_own_limit_is_422(hr):
    """Before: pypdf's LimitReachedError crashed the parser process, and the message blamed
    our time and memory limits."""
    r = upload(hr, "bomb.pdf", bomb_pdf_bytes(100_000_000))
    detail = problem(r, 422)
    assert detail.startswith(
        "'bomb.pdf' trips the PDF parser's safety limit (Limit reached while decompressing"
    )
    assert detail.endswith("Nothing was imported; check the file.")
    assert leftovers(hr) == variant_only("hr")


def test_pdf_inflating_past_the_memory_limit_is_422(make_client):
    client = make_client(rag_parse_memory_mb=128)
    client.post("/createModel", json={"name": "hr"})
    r = upload(client, "bomb.pdf", inflating_pdf_bytes())
    assert problem(r, 422) == (
        "'bomb.pdf' needs more than 128 MiB to parse "
        "(LLM_RAG_PARSE_MEMORY_MB); the PDF may be malformed."
    )
    assert leftovers(client) == variant_only("hr")


@pytest.mark.parametrize(
    "kind, detail",
    [
        (
            "page_tree",
            "'loop.pdf' is not a readable PDF (PdfReadError: Detected cyclic page "
            "references.); check the file and upload it again.",
        ),
        (
            "length",
            "'loop.pdf' trips the PDF parser's safety limit (Detected loop with self "
            "reference for IndirectObject(4, 0, ",
        ),
    ],
)
def test_pdfs_with_loops_are_422(hr, kind, detail):
    r = upload(hr, "loop.pdf", looping_pdf_bytes(kind))
    assert problem(r, 422).startswith(detail)
    assert leftovers(hr) == variant_only("hr")


def test_loops_the_parser_never_follows_do_not_stop_an_import(hr):
    """A circular /Prev chain (pypdf stops at the repeat) and a looping outline (never
    read): the text is imported, and deleting the documents leaves nothing."""
    for kind in ("xref", "outline"):
        r = upload(hr, f"{kind}.pdf", looping_pdf_bytes(kind))
        assert r.status_code == 201, r.text
        assert (r.json()["pages"], r.json()["chunks"]) == (1, 1)
    assert leftovers(hr)["chunks"] == 2
    assert hr.delete("/deleteAllDocuments", params={"model": "hr"}).status_code == 200
    assert leftovers(hr) == variant_only("hr")


# ----------------------------------------------------------- CSVs too wide or too long


def test_header_with_two_million_columns_is_refused_unparsed(quiet):
    header = ",".join(f"c{i}" for i in range(2_000_000)).encode()
    r = fine_tune(quiet, header + b"\n1,2\n")
    assert problem(r, 422) == (
        "train_file's first line (the CSV header) is longer than 65536 "
        "characters; a header names at most 64 columns, such as "
        "input,output."
    )
    r = fine_tune(quiet, b"," * 200 + b"\nQ,A\n")
    assert problem(r, 422) == "train_file has 201 columns; at most 64 are accepted."
    assert leftovers(quiet) == NOTHING


def test_a_row_of_millions_of_fields_is_refused_by_its_length(quiet):
    r = fine_tune(quiet, b"input,output\nQ,A\n" + b"," * 5_000_000 + b"\n")
    assert problem(r, 422) == (
        "train_file line 3 is longer than 4000000 characters; at most "
        "4000000 per line and 1000000 per field are accepted. Shorten "
        "that row (or check for an unclosed quote)."
    )
    assert leftovers(quiet) == NOTHING


def test_a_100_mb_cell_under_the_size_limit(make_client):
    """(Over LLM_MAX_DATASET_BYTES it is a 413: see the chunked upload test above.) Under
    it: refused by the line's length, before csv parses the cell or a tokenizer sees it."""
    client = make_client(max_dataset_bytes=120 << 20)
    body = multipart(
        {"model_name": "tuned"},
        "train_file",
        "train.csv",
        100 << 20,
        file_head=b"input,output\nQ,",
        file_tail=b"\n",
    )
    r = client.post("/fine_tune_model", content=body, headers=MULTIPART)
    assert problem(r, 422).startswith("train_file line 2 is longer than 4000000 characters")
    assert leftovers(client) == NOTHING


def test_json_values_over_the_field_limit_are_listed_by_row(quiet):
    big = "x" * (MAX_FIELD_CHARS + 1)
    rows = [
        {"input": "Q", "output": "A"},
        {"input": "Q", "output": big},
        {"messages": [{"role": "user", "content": big}]},
    ]
    r = fine_tune(quiet, jsonl(rows[:2] * 2), filename="train.jsonl")
    assert problem(r, 422) == "train_file has 2 problem(s); fix them and upload again."
    assert r.json()["errors"] == [
        f"row {n}: 'output' is {MAX_FIELD_CHARS + 1} characters long; at most "
        f"{MAX_FIELD_CHARS} are accepted per field"
        for n in (2, 4)
    ]
    r = fine_tune(quiet, jsonl([rows[2]]), filename="train.jsonl")
    assert r.json()["errors"][0] == (
        f"row 1, turn 1: 'content' is {MAX_FIELD_CHARS + 1} "
        f"characters long; at most {MAX_FIELD_CHARS} are accepted "
        "per field"
    )
    assert leftovers(quiet) == NOTHING


def test_deeply_nested_json_is_422_not_500(quiet):
    r = fine_tune(quiet, b"[" * 200_000, filename="train.json")
    assert problem(r, 422) == (
        "train_file is nested too deeply to be training data; each example is one flat object."
    )
    r = fine_tune(
        quiet,
        b'{"input": "Q", "output": "A"}\n' + b'{"a": ' * 200_000 + b"\n",
        filename="train.jsonl",
    )
    assert problem(r, 422) == "train_file has lines that are not JSON objects."
    assert r.json()["errors"] == ["line 2: nested too deeply"]
    assert leftovers(quiet) == NOTHING


# ---------------------------------------------------------------------- not UTF-8 text


def test_utf16_with_a_byte_order_mark_is_decoded():
    raw = "input,output\nWho made the caf\u00e9?,\u00c5sa and Zo\u00eb.\n".encode("utf-16")
    assert raw[:2] == b"\xff\xfe"
    fmt, examples = load_examples(raw, filename="t.csv")
    assert fmt == "csv/qa"
    assert examples == [
        [
            {"role": "user", "content": "Who made the caf\u00e9?"},
            {"role": "assistant", "content": "\u00c5sa and Zo\u00eb."},
        ]
    ]
    big_endian = "input,output\nQ,\u00e9\n".encode("utf-16-be")
    assert load_examples(b"\xfe\xff" + big_endian, filename="t.csv")[1][0][1]["content"] == "\u00e9"


def test_invalid_utf8_names_the_byte_and_the_line(quiet):
    data = b'{"input": "Q", "output": "A"}\n{"input": "caf\xe9", "output": "B"}\n'
    r = fine_tune(quiet, data, filename="train.jsonl")
    assert problem(r, 422) == (
        "train_file is not UTF-8 text: invalid byte 0xe9 at position "
        "44 (line 2); it may be Latin-1 or Windows-1252. Save it as "
        "UTF-8 and upload it again."
    )
    r = fine_tune(quiet, "input,output\nQ,A\n".encode("utf-16")[:-1] + b"\xd8", filename="t.csv")
    assert problem(r, 422).startswith(
        "train_file is not UTF-16 text (it starts with a UTF-16 byte-order mark): invalid byte"
    )
    assert leftovers(quiet) == NOTHING


def test_json_bodies_that_cannot_be_parsed_say_what_to_send(client):
    unparsable = (
        "The request body could not be parsed: send UTF-8 JSON (Content-Type: "
        "application/json) that is not nested hundreds of levels deep, or a "
        "well-formed multipart/form-data upload."
    )
    json_type = {"content-type": "application/json"}
    for body in ('{"name": "caf\u00e9"}'.encode("latin-1"), b"[" * 100_000):
        for path in ("/createModel", "/generate"):
            r = client.post(path, content=body, headers=json_type)
            assert problem(r, 400) == unparsable, (path, body[:10])
        r = client.post("/v1/chat/completions", content=body, headers=json_type)
        assert r.status_code == 400 and r.json()["error"]["message"] == unparsable
    assert leftovers(client) == NOTHING


def test_unpaired_surrogates_in_prompts_are_422_not_500(client):
    """JSON may escape half a UTF-16 pair ("\\ud800"); unconstrained str fields let it
    through, and the tokenizer failed on it (500)."""
    json_type = {"content-type": "application/json"}
    r = client.post(
        "/generate",
        headers=json_type,
        content=b'{"model": "smollm2-135m", "prompt": "hi \\ud800", "options": {"max_tokens": 2}}',
    )
    assert problem(r, 422) == (
        "Message 0 contains an unpaired UTF-16 surrogate ('\\ud800' at "
        "character 3), which is not text; send valid Unicode."
    )
    r = client.post(
        "/v1/chat/completions",
        headers=json_type,
        content=(
            b'{"model": "smollm2-135m", "max_tokens": 2, "messages": [{"role": "system", '
            b'"content": "be brief"}, {"role": "user", "content": "\\udfff"}]}'
        ),
    )
    assert r.status_code == 422
    assert r.json()["error"]["message"].startswith(
        "Message 1 contains an unpaired UTF-16 surrogate ('\\udfff' at character 0)"
    )


def test_unpaired_surrogates_in_training_data_are_listed_by_row(quiet):
    """Before: the tokenizer raised TypeError on them (500)."""
    data = b'{"input": "Q", "output": "A"}\n{"input": "Q\\ud800", "output": "A"}\n'
    r = fine_tune(quiet, data, filename="train.jsonl")
    assert problem(r, 422) == "train_file has 1 problem(s); fix them and upload again."
    assert r.json()["errors"] == [
        "row 2: 'input' contains an unpaired UTF-16 surrogate "
        "('\\ud800' at character 1), which is not text"
    ]
    chat = (
        b'{"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", '
        b'"content": "A \\udc00"}]}\n'
    )
    r = fine_tune(quiet, chat, filename="train.jsonl")
    assert r.json()["errors"][0] == (
        "row 1, turn 2: 'content' contains an unpaired UTF-16 "
        "surrogate ('\\udc00' at character 2), which is not text"
    )
    assert leftovers(quiet) == NOTHING


# ------------------------------------------------------------- names with path tricks


def test_tricky_model_names_in_json_bodies(client):
    for name in TRICKY_NAMES:
        r = client.post("/createModel", json={"name": name})
        assert NAME_RULE in problem(r, 422), name
        r = client.post("/createModel", json={"name": "ok", "base_model": name})
        assert problem(r, 404) == (
            f"Base model {name!r} not found. Available base models: smollm2-135m."
        ), name
        r = client.post("/generate", json={"model": name, "prompt": "hi"})
        assert problem(r, 404).startswith(f"Model {name!r} not found. Available models: "), name
        r = client.post(f"/jobs/{'ftjob-nope'}/export", json={"model_name": name})
        assert NAME_RULE in problem(r, 422), name
    assert leftovers(client) == NOTHING


def test_tricky_names_in_query_parameters(hr):
    for name in TRICKY_NAMES:
        r = hr.delete("/deleteModel", params={"name": name})
        assert problem(r, 404) == f"Model {name!r} not found. Models you can delete: hr.", name
        for path in ("/listDocuments", "/deleteAllDocuments"):
            r = hr.request(
                "GET" if path.startswith("/list") else "DELETE", path, params={"model": name}
            )
            assert problem(r, 404).startswith(f"Model {name!r} not found."), (path, name)
        r = hr.delete("/deleteDocument", params={"model": "hr", "document": name})
        assert problem(r, 404) == (
            f"Document {name!r} not found for model 'hr'. Documents: none."
        ), name
    r = hr.delete("/deleteModel", params={"name": "x" * 201})
    assert "name: String should have at most 200 characters" in problem(r, 422)
    assert leftovers(hr) == variant_only("hr")


def test_tricky_names_in_form_fields(hr, quiet):
    document = pdf_bytes(MENU)
    for name in TRICKY_NAMES:
        r = upload(hr, "menu.pdf", document, model=name)
        assert problem(r, 404).startswith(f"Model {name!r} not found."), name
    for name in DOCUMENT_TRICKS:
        r = upload(hr, "menu.pdf", document, name=name)
        assert problem(r, 422) == f"Invalid document name {name!r}: use {DOC_NAME_RULE}.", name
    for name in TRICKY_NAMES:
        r = fine_tune(quiet, qa_csv(5), model_name=name)
        assert NAME_RULE in problem(r, 422), name
        r = fine_tune(quiet, qa_csv(5), base_model=name)
        assert NAME_RULE in problem(r, 422), name
    assert leftovers(hr) == variant_only("hr")
    assert leftovers(quiet) == variant_only("hr")  # same DATA_DIR


def test_tricky_job_ids_in_paths(client):
    for raw in ("%2E%2E", "x%00y", "ftjob-%D0%B0", "%EF%BC%90", "a%5Cb", "x" * 300):
        for method, suffix in (("GET", ""), ("POST", "/cancel"), ("GET", "/events")):
            r = client.request(method, f"/jobs/{raw}{suffix}")
            assert problem(r, 404).endswith("not found; GET /jobs lists jobs."), (raw, suffix)
        for method, suffix in (("GET", ""), ("GET", "/download"), ("DELETE", "")):
            r = client.request(method, f"/datasets/{raw}{suffix}")
            assert problem(r, 404).startswith("Dataset "), (raw, suffix)
    for raw in ("..", "../jobs", "/etc/passwd", "x\x00y", "dsjob-\u0430", "x" * 100):
        r = client.post("/fine_tune_model", data={"model_name": "tuned", "dataset_id": raw})
        assert problem(r, 404).startswith(f"Dataset {raw!r} not found"), raw
    r = client.post("/fine_tune_model", data={"model_name": "tuned", "dataset_id": "x" * 101})
    assert "dataset_id: String should have at most 100 characters" in problem(r, 422)
    for after in ("-1", str(2**63), "1e3", "x"):  # before: 2**63 broke the stream (sqlite)
        r = client.get("/jobs/ftjob-nope/events", params={"after": after})
        assert "after: Input should be" in problem(r, 422), after
    r = client.get("/jobs/%2Fetc%2Fpasswd")  # decodes to /jobs//etc/passwd: no route at all
    assert problem(r, 404) == (
        "No route matches GET /jobs//etc/passwd; the API's routes are listed at /docs."
    )
    assert leftovers(client) == NOTHING


# ---------------------------------------------------------- unknown models, documents


def test_unknown_models_and_documents_are_404_saying_what_exists(hr):
    models = "Model 'ghost' not found. Available models: smollm2-135m, hr."
    bases = "Base model 'ghost' not found. Available base models: smollm2-135m."
    checks = [
        (hr.post("/generate", json={"model": "ghost", "prompt": "hi"}), models),
        (upload(hr, "menu.pdf", pdf_bytes(MENU), model="ghost"), models),
        (hr.get("/listDocuments", params={"model": "ghost"}), models),
        (hr.delete("/deleteAllDocuments", params={"model": "ghost"}), models),
        (hr.delete("/deleteDocument", params={"model": "ghost", "document": "a.pdf"}), models),
        (
            hr.delete("/deleteModel", params={"name": "ghost"}),
            "Model 'ghost' not found. Models you can delete: hr.",
        ),
        (hr.post("/createModel", json={"name": "x", "base_model": "ghost"}), bases),
        (fine_tune(hr, qa_csv(5), base_model="ghost"), bases),
        (
            hr.delete("/deleteDocument", params={"model": "hr", "document": "ghost.pdf"}),
            "Document 'ghost.pdf' not found for model 'hr'. Documents: none.",
        ),
        (
            hr.post("/generate", json={"model": "hr", "prompt": "hi", "documents": ["ghost.pdf"]}),
            "Model 'hr' has no documents; import one with POST /importDocument.",
        ),
        (
            hr.post("/jobs/ftjob-ghost/export", json={}),
            "Job 'ftjob-ghost' not found; GET /jobs lists jobs.",
        ),
    ]
    for r, detail in checks:
        assert problem(r, 404) == detail, r.request.url
    r = hr.post(
        "/v1/chat/completions",
        json={"model": "ghost", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert r.status_code == 404
    assert r.json()["error"]["message"] == models
    assert leftovers(hr) == variant_only("hr")


# ---------------------------------------------------- concurrent deletes: 409, no orphans


def test_deleting_a_model_while_a_document_import_runs(hr, monkeypatch):
    """Before: the delete succeeded, then the import finished for a model that no longer
    existed, leaving a document row, its PDF and its chunks that nothing lists or removes."""
    parsing, release = threading.Event(), threading.Event()
    real_extract = documents_module.extract_pages

    def slow_extract(*args, **kwargs):
        parsing.set()
        assert release.wait(60)
        return real_extract(*args, **kwargs)

    monkeypatch.setattr(documents_module, "extract_pages", slow_extract)
    result = {}
    importer = threading.Thread(
        target=lambda: result.setdefault("r", upload(hr, "menu.pdf", pdf_bytes(MENU)))
    )
    importer.start()
    try:
        assert parsing.wait(60)
        r = hr.delete("/deleteModel", params={"name": "hr"})
        assert problem(r, 409) == (
            "Model 'hr' is in use: importing document 'menu.pdf'. Delete it when that has finished."
        )
        r = hr.delete("/deleteAllDocuments", params={"model": "hr"})
        assert problem(r, 409) == (
            "Model 'hr' is in use: importing document 'menu.pdf'. "
            "Delete its documents when that has finished."
        )
        assert hr.get("/listModels").json()["count"] == 2
    finally:
        release.set()
        importer.join(120)
    assert result["r"].status_code == 201, result["r"].text
    assert leftovers(hr)["chunks"] == 2
    assert hr.delete("/deleteModel", params={"name": "hr"}).status_code == 200
    assert leftovers(hr) == NOTHING


def test_an_import_that_starts_during_a_delete_waits_and_finds_no_model(hr, monkeypatch):
    """The other order: the delete holds the model while it removes it; an import that
    arrives then resolves the name afterwards and gets a 404, leaving nothing."""
    deleting, release = threading.Event(), threading.Event()
    service = hr.app.state.documents
    real_delete_all = service.delete_all

    def slow_delete_all(**kwargs):
        deleting.set()
        assert release.wait(60)
        return real_delete_all(**kwargs)

    monkeypatch.setattr(service, "delete_all", slow_delete_all)
    result = {}
    deleter = threading.Thread(
        target=lambda: result.setdefault("r", hr.delete("/deleteModel", params={"name": "hr"}))
    )
    deleter.start()
    try:
        assert deleting.wait(60)
        importer = threading.Thread(
            target=lambda: result.setdefault("i", upload(hr, "menu.pdf", pdf_bytes(MENU)))
        )
        importer.start()
        importer.join(1.0)
        assert importer.is_alive()  # waiting for the delete to finish
    finally:
        release.set()
        deleter.join(60)
    importer.join(60)
    assert result["r"].status_code == 200
    assert problem(result["i"], 404).startswith("Model 'hr' not found.")
    assert leftovers(hr) == NOTHING


def test_deletes_while_a_fine_tuning_job_is_queued(quiet):
    """A job trains on a base (never on a variant), which the API does not delete; the
    model a job will produce cannot be deleted or created under it until the job ends."""
    r = fine_tune(quiet, qa_csv(8), model_name="tuned")
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["status"] == "queued"
    r = quiet.delete("/deleteModel", params={"name": "tuned"})
    assert problem(r, 409) == (
        f"Model 'tuned' does not exist yet: job {job['id']} (queued) is "
        f"producing it. Cancel the job (POST /jobs/{job['id']}/cancel) "
        "to stop it."
    )
    r = quiet.delete("/deleteModel", params={"name": "smollm2-135m"})
    assert problem(r, 409).startswith("'smollm2-135m' is a base model")
    assert quiet.post("/createModel", json={"name": "tuned"}).status_code == 409
    # a variant of the job's base can come and go; the job does not use it
    assert quiet.post("/createModel", json={"name": "side"}).status_code == 201
    assert quiet.delete("/deleteModel", params={"name": "side"}).status_code == 200
    assert quiet.post("/createModel", json={"name": "side"}).status_code == 201
    r = fine_tune(quiet, qa_csv(8), model_name="other", base_model="side")
    assert problem(r, 422) == (  # base_model may name a fine-tuned model, not a prompt-only one
        "base_model: 'side' is a variant of 'smollm2-135m' without trained weights (a system "
        "prompt only); fine-tune 'smollm2-135m' instead."
    )
    assert quiet.get(f"/jobs/{job['id']}").json()["status"] == "queued"
    assert quiet.post(f"/jobs/{job['id']}/cancel").json()["status"] == "cancelled"
    r = quiet.delete("/deleteModel", params={"name": "tuned"})
    assert problem(r, 404) == "Model 'tuned' not found. Models you can delete: side."
    assert leftovers(quiet)["variants"] == ["side"]


def test_deleting_the_teacher_of_a_queued_dataset_job_is_409(quiet):
    """A dataset job calls its teacher model while it runs: deleting it would fail the job
    half-way, so the delete waits for the job (or its cancellation)."""
    assert quiet.post("/createModel", json={"name": "teacher"}).status_code == 201
    seeds = jsonl([{"instruction": f"Name a colour ({i}).", "output": "Red."} for i in range(3)])
    r = quiet.post(
        "/datasets/generate",
        data={"teacher": "teacher", "count": "2"},
        files={"seed_file": ("seeds.jsonl", seeds, "application/jsonl")},
    )
    assert r.status_code == 202, r.text
    job = r.json()
    r = quiet.delete("/deleteModel", params={"name": "teacher"})
    assert problem(r, 409) == (
        f"Model 'teacher' is in use: it is the teacher of job "
        f"{job['id']} (queued). Cancel the job (POST /jobs/{job['id']}"
        "/cancel) or wait for it to end, then delete it."
    )
    assert leftovers(quiet)["variants"] == ["teacher"]
    assert quiet.post(f"/jobs/{job['id']}/cancel").json()["status"] == "cancelled"
    assert quiet.delete("/deleteModel", params={"name": "teacher"}).status_code == 200
    assert leftovers(quiet)["variants"] == []


BAD_TEMPLATES = {
    "raises": ("{{ raise_exception('Conversation roles must alternate') }}", "must alternate"),
    "syntax": ("{% if %}{{ messages }}", "Expected an expression"),
    "unsafe": ("{{ messages[0].content.__class__.__mro__ }}", "is unsafe"),
}


def test_a_variant_template_that_fails_to_render_is_422(client):
    """The variant's own Jinja template is rendered for the llama-server child in a sandbox:
    its own error, a syntax error or an unsafe attribute is a 422 naming the fix; the
    base's child goes on answering."""
    for name, (template, says) in BAD_TEMPLATES.items():
        r = client.post("/createModel", json={"name": name, "template": template})
        assert r.status_code == 201, r.text
        r = client.post(
            "/generate", json={"model": name, "prompt": "Hi", "options": {"max_tokens": 2}}
        )
        assert r.status_code == 422, r.text
        detail = r.json()["detail"]
        assert detail.startswith(f"The chat template of '{name}' failed to render: "), detail
        assert says in detail and detail.endswith("Fix the template (recreate the model).")
    r = client.post(
        "/generate", json={"model": "smollm2-135m", "prompt": "Hi", "options": {"max_tokens": 2}}
    )
    assert r.status_code == 200, r.text
