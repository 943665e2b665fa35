"""The same flow against a real Chroma server (HttpClient), as in the compose deployment,
with the default multi-query retrieval: the model writes three alternative queries."""

import chromadb

from tests.utils.pdfs import HANDBOOK, MENU, pdf_bytes

HELPFUL = "You are a helpful assistant."


def upload(client, name, pages):
    return client.post(
        "/importDocument",
        data={"model": "hr"},
        files={"file": (name, pdf_bytes(pages), "application/pdf")},
    )


def collections(url):
    host, port = url.removeprefix("http://").split(":")
    return [c.name for c in chromadb.HttpClient(host=host, port=int(port)).list_collections()]


def test_documents_live_in_the_chroma_server(make_client, chroma_url, tmp_path):
    client = make_client(chroma_url=chroma_url)
    assert (
        client.post("/createModel", json={"name": "hr", "system_prompt": HELPFUL}).status_code
        == 201
    )
    assert upload(client, "handbook.pdf", HANDBOOK).status_code == 201
    assert upload(client, "menu.pdf", MENU).status_code == 201
    assert "model-hr-docs" in collections(chroma_url)
    assert not (tmp_path / "data" / "chroma").exists()  # nothing embedded on disk

    listed = client.get("/listDocuments", params={"model": "hr"}).json()
    assert [(d["name"], d["pages"]) for d in listed["data"]] == [
        ("handbook.pdf", 4),
        ("menu.pdf", 2),
    ]

    r = client.post(
        "/generate",
        json={
            "model": "hr",
            "prompt": "Which pets are allowed in the office?",
            "documents": ["handbook.pdf"],
            "options": {"temperature": 0, "max_tokens": 24},
        },
    )
    assert r.status_code == 200, r.text
    sources = r.json()["sources"]
    assert (sources[0]["document"], sources[0]["page"]) == ("handbook.pdf", 4)
    assert {s["document"] for s in sources} == {"handbook.pdf"}

    r = client.delete("/deleteDocument", params={"model": "hr", "document": "menu.pdf"})
    assert r.status_code == 200
    assert [
        d["name"] for d in client.get("/listDocuments", params={"model": "hr"}).json()["data"]
    ] == ["handbook.pdf"]

    assert upload(client, "menu.pdf", MENU).status_code == 201
    r = client.delete("/deleteAllDocuments", params={"model": "hr"})
    assert r.json() == {"message": "2 document(s) deleted from model 'hr'."}
    assert "model-hr-docs" not in collections(chroma_url)

    assert upload(client, "menu.pdf", MENU).status_code == 201
    assert client.delete("/deleteModel", params={"name": "hr"}).status_code == 200
    assert "model-hr-docs" not in collections(chroma_url)


def test_an_unreachable_chroma_server_is_503(make_client):
    client = make_client(chroma_url="http://127.0.0.1:9")
    client.post("/createModel", json={"name": "hr"})
    r = upload(client, "menu.pdf", MENU)
    assert r.status_code == 503
    assert r.json()["detail"].startswith("Chroma at http://127.0.0.1:9 is not reachable (")
    assert client.get("/listDocuments", params={"model": "hr"}).json()["count"] == 0
