"""Documents through the HTTP API: real PDFs, real embedded Chroma, the real SmolLM2."""

import json

import pytest

from tests.utils.pdfs import HANDBOOK, MENU, encrypted_pdf_bytes, pdf_bytes, slow_pdf_bytes

HELPFUL = "You are a helpful assistant."
GREEDY = {"temperature": 0, "max_tokens": 24}


@pytest.fixture
def hr(make_client):
    """A client with a variant `hr`. Searching with the question only keeps these tests
    quick; the model writing alternative queries is tested in tests/rag."""
    client = make_client(rag_alternative_queries=0)
    assert (
        client.post("/createModel", json={"name": "hr", "system_prompt": HELPFUL}).status_code
        == 201
    )
    return client


def upload(client, filename, data, model="hr", **fields):
    return client.post(
        "/importDocument",
        files={"file": (filename, data, "application/pdf")},
        data={"model": model, **fields},
    )


def ask(client, prompt, **extra):
    return client.post(
        "/generate", json={"model": "hr", "prompt": prompt, "options": GREEDY, **extra}
    )


def pages(body):
    return [(s["document"], s["page"]) for s in body["sources"]]


def leftovers(client):
    """Files under DATA_DIR/documents other than stored PDFs of listed documents."""
    root = client.app.state.documents.files_dir
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.fixture
def imported(hr):
    r = upload(hr, "handbook.pdf", pdf_bytes(HANDBOOK))
    assert r.status_code == 201, r.text
    assert upload(hr, "menu.pdf", pdf_bytes(MENU)).status_code == 201
    return hr


def test_import_reports_pages_and_chunks(hr):
    data = pdf_bytes(HANDBOOK)
    r = upload(hr, "handbook.pdf", data)
    assert r.status_code == 201, r.text
    body = r.json()
    assert {k: body[k] for k in ("model", "name", "pages", "chunks", "size", "replaced")} == {
        "model": "hr",
        "name": "handbook.pdf",
        "pages": 4,
        "chunks": 4,
        "size": len(data),
        "replaced": False,
    }
    # stored under a name we generate, never the client's
    assert len(leftovers(hr)) == 1 and leftovers(hr)[0].startswith("hr/")
    assert "handbook" not in leftovers(hr)[0]


def test_list_documents(imported):
    r = imported.get("/listDocuments", params={"model": "hr"})
    assert r.status_code == 200
    body = r.json()
    assert body["count"] == 2
    assert [(d["name"], d["pages"], d["chunks"], d["size"]) for d in body["data"]] == [
        ("handbook.pdf", 4, 4, len(pdf_bytes(HANDBOOK))),
        ("menu.pdf", 2, 2, len(pdf_bytes(MENU))),
    ]
    assert all(d["imported_at"] for d in body["data"])


def test_answer_names_the_right_document_and_page(imported):
    r = ask(
        imported, "How many days of paid vacation does an employee get?", documents=["handbook.pdf"]
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert pages(body)[0] == ("handbook.pdf", 2)
    assert "27 days of paid vacation" in body["sources"][0]["passage"]
    assert body["sources"][0]["chunk"] == 1
    assert {d for d, _ in pages(body)} == {"handbook.pdf"}  # limited to the requested document
    assert body["warnings"] == []
    chunks = [s["chunk"] for s in body["sources"]]
    assert len(chunks) == len(set(chunks)) == 4  # top-k 4, no duplicates


def test_all_documents_finds_the_other_document(imported):
    r = ask(imported, "What is the gate access code of the car park?", all_documents=True)
    assert r.status_code == 200, r.text
    body = r.json()
    assert pages(body)[0] == ("handbook.pdf", 3)
    assert "ZEBRA-42" in body["response"]
    r = ask(imported, "When does the cafeteria close?", all_documents=True)
    assert pages(r.json())[0] == ("menu.pdf", 2)


def test_streamed_answer_ends_with_sources(imported):
    body = {
        "model": "hr",
        "prompt": "When does the cafeteria close?",
        "documents": ["menu.pdf"],
        "options": GREEDY,
        "stream": True,
    }
    with imported.stream("POST", "/generate", json=body) as r:
        assert r.status_code == 200
        lines = [json.loads(line) for line in r.iter_lines() if line]
    assert lines[-1]["done"] is True
    assert [(s["document"], s["page"]) for s in lines[-1]["sources"]][0] == ("menu.pdf", 2)
    assert "sources" not in lines[0]


def test_openai_chat_completion_with_documents(imported):
    r = imported.post(
        "/v1/chat/completions",
        json={
            "model": "hr",
            "messages": [{"role": "user", "content": "When does the cafeteria close?"}],
            "documents": ["menu.pdf"],
            "temperature": 0,
            "max_tokens": 24,
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["sources"][0]["document"], body["sources"][0]["page"]) == ("menu.pdf", 2)
    assert body["warnings"] == []
    assert body["choices"][0]["message"]["content"]


def test_openai_streamed_completion_carries_sources_in_the_last_chunk(imported):
    body = {
        "model": "hr",
        "messages": [{"role": "user", "content": "When does the cafeteria close?"}],
        "all_documents": True,
        "temperature": 0,
        "max_tokens": 24,
        "stream": True,
    }
    with imported.stream("POST", "/v1/chat/completions", json=body) as r:
        assert r.status_code == 200
        frames = [line.removeprefix("data: ") for line in r.iter_lines() if line]
    assert frames[-1] == "[DONE]"
    chunks = [json.loads(f) for f in frames[:-1]]
    finish = [c for c in chunks if c["choices"][0]["finish_reason"] is not None]
    assert len(finish) == 1
    assert (finish[0]["sources"][0]["document"], finish[0]["sources"][0]["page"]) == ("menu.pdf", 2)
    assert all("sources" not in c for c in chunks if c is not finish[0])


def test_openai_unknown_document_uses_the_openai_envelope(imported):
    r = imported.post(
        "/v1/chat/completions",
        json={
            "model": "hr",
            "messages": [{"role": "user", "content": "hi"}],
            "documents": ["x.pdf"],
        },
    )
    assert r.status_code == 404
    assert r.json()["error"]["message"] == (
        "Document 'x.pdf' not found for model 'hr'. Documents: handbook.pdf, menu.pdf."
    )


def test_context_that_does_not_fit_is_trimmed_with_a_warning(make_client):
    client = make_client(context_length=512, rag_alternative_queries=0, rag_chunk_size=1500)
    client.post("/createModel", json={"name": "hr", "system_prompt": HELPFUL})
    long_pages = [" ".join([text] * 6) for text in HANDBOOK]  # ~900 characters a page
    assert upload(client, "long.pdf", pdf_bytes(long_pages)).status_code == 201
    r = client.post(
        "/generate",
        json={
            "model": "hr",
            "prompt": "How many days of paid vacation does an employee get?",
            "all_documents": True,
            "options": {"temperature": 0, "max_tokens": 4},
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert pages(body)[0] == ("long.pdf", 2)
    assert body["warnings"] == [
        "The retrieved context was trimmed to fit the 512-token context window: "
        "2 of 4 passages used, the last one shortened."
    ]
    assert body["sources"][1]["passage"].endswith("...")
    assert body["prompt_tokens"] + body["completion_tokens"] <= 512


def test_reimport_replaces_the_document(imported):
    r = upload(imported, "handbook.pdf", pdf_bytes(HANDBOOK[:2]))
    assert r.status_code == 201
    assert (r.json()["replaced"], r.json()["pages"], r.json()["chunks"]) == (True, 2, 2)
    listed = imported.get("/listDocuments", params={"model": "hr"}).json()["data"]
    assert [(d["name"], d["pages"]) for d in listed] == [("handbook.pdf", 2), ("menu.pdf", 2)]
    assert len(leftovers(imported)) == 2  # the old file is gone
    collection = imported.app.state.documents.store.collection("hr")
    assert collection._collection.count() == 2 + 2  # the old chunks are gone


def test_delete_one_document(imported):
    r = imported.delete("/deleteDocument", params={"model": "hr", "document": "handbook.pdf"})
    assert r.status_code == 200
    assert r.json() == {"message": "Document 'handbook.pdf' deleted from model 'hr'."}
    listed = imported.get("/listDocuments", params={"model": "hr"}).json()
    assert [d["name"] for d in listed["data"]] == ["menu.pdf"]
    r = ask(imported, "How many vacation days?", documents=["handbook.pdf"])
    assert r.status_code == 404
    assert (
        r.json()["detail"]
        == "Document 'handbook.pdf' not found for model 'hr'. Documents: menu.pdf."
    )
    assert imported.app.state.documents.store.collection("hr")._collection.count() == 2


def test_delete_all_documents(imported):
    r = imported.delete("/deleteAllDocuments", params={"model": "hr"})
    assert r.status_code == 200
    assert r.json() == {"message": "2 document(s) deleted from model 'hr'."}
    assert imported.get("/listDocuments", params={"model": "hr"}).json()["count"] == 0
    assert leftovers(imported) == []
    r = ask(imported, "How many vacation days?", all_documents=True)
    assert r.status_code == 404
    assert (
        r.json()["detail"] == "Model 'hr' has no documents; import one with POST /importDocument."
    )


def test_deleting_the_model_deletes_its_documents(imported):
    client_api = imported.app.state.documents.store.client
    assert "model-hr-docs" in [c.name for c in client_api.list_collections()]
    assert imported.delete("/deleteModel", params={"name": "hr"}).status_code == 200
    assert "model-hr-docs" not in [c.name for c in client_api.list_collections()]
    assert leftovers(imported) == []
    imported.post("/createModel", json={"name": "hr"})
    assert imported.get("/listDocuments", params={"model": "hr"}).json()["count"] == 0


def test_documents_of_one_model_are_not_seen_by_another(imported):
    imported.post("/createModel", json={"name": "sales", "system_prompt": HELPFUL})
    assert imported.get("/listDocuments", params={"model": "sales"}).json()["count"] == 0
    r = imported.post(
        "/generate", json={"model": "sales", "prompt": "Vacation days?", "all_documents": True}
    )
    assert r.status_code == 404
    assert (
        r.json()["detail"]
        == "Model 'sales' has no documents; import one with POST /importDocument."
    )


# bad input ------------------------------------------------------------------------------


def assert_nothing_imported(client):
    assert client.get("/listDocuments", params={"model": "hr"}).json()["count"] == 0
    assert leftovers(client) == []


def test_renamed_text_file_is_422(hr):
    r = upload(hr, "notes.pdf", b"These are plain text notes, not a PDF.\n")
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["detail"] == (
        "'notes.pdf' is not a PDF (it does not start with %PDF-); upload a PDF file."
    )
    assert_nothing_imported(hr)


def test_truncated_pdf_is_422(hr):
    data = pdf_bytes(HANDBOOK)
    r = upload(hr, "cut.pdf", data[: len(data) // 2])
    assert r.status_code == 422
    assert r.json()["detail"] == (
        "'cut.pdf' is not a readable PDF (PdfStreamError: Stream has ended unexpectedly); "
        "check the file and upload it again."
    )
    assert_nothing_imported(hr)


def test_encrypted_pdf_is_422(hr):
    r = upload(hr, "secret.pdf", encrypted_pdf_bytes(HANDBOOK))
    assert r.status_code == 422
    assert (
        r.json()["detail"] == "'secret.pdf' is encrypted; remove the password and upload it again."
    )
    assert_nothing_imported(hr)


def test_pdf_without_text_is_422(hr):
    r = upload(hr, "blank.pdf", pdf_bytes(["", ""]))
    assert r.status_code == 422
    assert r.json()["detail"] == (
        "'blank.pdf' contains no extractable text (empty or scanned "
        "pages); import a PDF with a text layer."
    )
    assert_nothing_imported(hr)


TOO_LARGE = (
    "The upload is larger than the limit of 2048 bytes (LLM_RAG_MAX_UPLOAD_BYTES); "
    "split the PDF or raise the limit."
)


def test_oversized_upload_is_413(make_client):
    client = make_client(rag_max_upload_bytes=2048)
    client.post("/createModel", json={"name": "hr"})
    r = upload(client, "big.pdf", b"%PDF-1.7\n" + b"0" * 200_000)
    assert r.status_code == 413
    assert r.json()["detail"] == TOO_LARGE
    assert_nothing_imported(client)


def test_oversized_upload_without_content_length_is_stopped_while_streaming(make_client):
    client = make_client(rag_max_upload_bytes=2048)
    client.post("/createModel", json={"name": "hr"})
    head = (
        b'--b\r\nContent-Disposition: form-data; name="model"\r\n\r\nhr\r\n'
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="big.pdf"\r\n'
        b"Content-Type: application/pdf\r\n\r\n%PDF-1.7\n"
    )

    def body():  # a generator: httpx sends it chunked, with no Content-Length
        yield head
        for _ in range(100):
            yield b"0" * 1024
        yield b"\r\n--b--\r\n"

    r = client.post(
        "/importDocument",
        content=body(),
        headers={"content-type": "multipart/form-data; boundary=b"},
    )
    assert r.status_code == 413
    assert r.json()["detail"] == TOO_LARGE
    assert_nothing_imported(client)


def test_unknown_model_is_404(hr):
    r = upload(hr, "handbook.pdf", pdf_bytes(HANDBOOK), model="ghost")
    assert r.status_code == 404
    assert r.json()["detail"] == "Model 'ghost' not found. Available models: smollm2-135m, hr."
    assert leftovers(hr) == []
    for method, path, params in [
        ("GET", "/listDocuments", {"model": "ghost"}),
        ("DELETE", "/deleteAllDocuments", {"model": "ghost"}),
        ("DELETE", "/deleteDocument", {"model": "ghost", "document": "a"}),
    ]:
        r = hr.request(method, path, params=params)
        assert r.status_code == 404
        assert r.json()["detail"].startswith("Model 'ghost' not found.")


def test_unknown_document_is_404(imported):
    r = imported.delete("/deleteDocument", params={"model": "hr", "document": "nope.pdf"})
    assert r.status_code == 404
    assert r.json()["detail"] == (
        "Document 'nope.pdf' not found for model 'hr'. Documents: handbook.pdf, menu.pdf."
    )
    r = ask(imported, "hi", documents=["menu.pdf", "nope.pdf"])
    assert r.status_code == 404
    assert r.json()["detail"] == (
        "Document 'nope.pdf' not found for model 'hr'. Documents: handbook.pdf, menu.pdf."
    )


@pytest.mark.parametrize(
    "filename", ["../../etc/passwd.pdf", "dir/handbook.pdf", "..", ".hidden.pdf"]
)
def test_document_names_with_paths_are_422(hr, filename):
    r = upload(hr, filename, pdf_bytes(HANDBOOK))
    assert r.status_code == 422
    assert r.json()["detail"].startswith(
        f"Invalid document name {filename!r}: use 1-127 characters"
    )
    assert_nothing_imported(hr)


def test_name_field_overrides_the_file_name(hr):
    r = upload(hr, "scan_0001.pdf", pdf_bytes(MENU), name="Cafeteria menu.pdf")
    assert r.status_code == 201
    assert r.json()["name"] == "Cafeteria menu.pdf"


def test_requests_without_a_file_are_422(hr):
    r = hr.post(
        "/importDocument", data={"model": "hr"}, files={"other": ("x.txt", b"x", "text/plain")}
    )
    assert r.status_code == 422
    assert r.json()["detail"] == (
        "No `file` part in the upload: send multipart/form-data with a "
        "`file` part and a `model` field (curl -F file=@handbook.pdf "
        "-F model=NAME)."
    )
    r = hr.post("/importDocument", json={"model": "hr"})
    assert r.status_code == 422
    assert r.json()["detail"].startswith("Not a multipart upload: send multipart/form-data")


@pytest.mark.parametrize(
    "extra, detail",
    [
        (
            {"documents": ["menu.pdf"], "all_documents": True},
            "Send either `documents` or `all_documents: true`, not both",
        ),
        ({"documents": []}, "`documents` is empty"),
    ],
)
def test_ambiguous_document_selection_is_422(imported, extra, detail):
    r = ask(imported, "hi", **extra)
    assert r.status_code == 422
    assert r.json()["detail"].startswith(detail)


def test_pdf_that_hangs_the_parser_fails_within_the_limit(make_client):
    client = make_client(rag_parse_timeout_s=1, rag_alternative_queries=0)
    client.post("/createModel", json={"name": "hr", "system_prompt": HELPFUL})
    r = upload(client, "crafted.pdf", slow_pdf_bytes())
    assert r.status_code == 422
    assert r.json()["detail"] == (
        "'crafted.pdf' could not be read within the 1 s parsing limit; "
        "the PDF may be malformed. Nothing was imported."
    )
    assert_nothing_imported(client)
    # the service is still up and imports the next document
    assert upload(client, "menu.pdf", pdf_bytes(MENU)).status_code == 201
    assert client.get("/listDocuments", params={"model": "hr"}).json()["count"] == 1
