"""The document catalogue on SQLite and PostgreSQL, and recovery that leaves imports in
progress (on this or another replica: they hold their import lock) and other replicas'
uploads alone."""

from api.config import Settings
from api.db import db_lock
from api.rag.catalog import DocumentCatalog, DocumentRecord
from api.rag.documents import DocumentService, _import_lock


def record(name: str, import_id: str, model: str = "hr") -> DocumentRecord:
    return DocumentRecord(model, name, import_id, f"{import_id}.pdf", 1, 2, 3, "t")


def test_put_replace_remove_and_pending(db_target):
    catalog = DocumentCatalog(db_target("documents"))
    catalog.begin(model="hr", import_id="i1", file="i1.pdf")
    assert catalog.pending() == [("hr", "i1", "i1.pdf")]
    assert catalog.put(record("b.pdf", "i1")) is None
    assert catalog.pending() == []  # committed
    catalog.begin(model="hr", import_id="i2", file="i2.pdf")
    assert catalog.put(record("b.pdf", "i2")) == record("b.pdf", "i1")  # replaced ...
    assert catalog.pending() == [("hr", "i1", "i1.pdf")]  # ... and its files must go
    catalog.done("i1")
    catalog.put(record("B.pdf", "i3"))
    catalog.put(record("a.pdf", "i4"))
    assert [r.name for r in catalog.of_model("hr")] == ["B.pdf", "a.pdf", "b.pdf"]  # code points
    assert catalog.remove("hr", "a.pdf") == record("a.pdf", "i4")
    assert sorted(r.import_id for r in catalog.remove_all("hr")) == ["i2", "i3"]
    assert catalog.of_model("hr") == []
    assert sorted(p[1] for p in catalog.pending()) == ["i2", "i3", "i4"]


def test_start_up_leaves_another_replicas_import_and_upload_alone(db_target, tmp_path):
    target = db_target("documents")
    url = target if isinstance(target, str) else None
    data = tmp_path / "data"
    a = DocumentService(Settings(data_dir=data, database_url=url, replica_id="a"))
    b = DocumentService(Settings(data_dir=data, database_url=url, replica_id="b"))
    # a is importing: pending row, lock held, file moved in, and another upload arriving
    folder = a.files_dir / "hr"
    folder.mkdir(parents=True)
    a.incoming_dir.mkdir(parents=True)
    (a.incoming_dir / "upload.part").write_bytes(b"%PDF")
    with db_lock(a.settings, _import_lock("inflight")):
        a.catalog.begin(model="hr", import_id="inflight", file="inflight.pdf")
        (folder / "inflight.pdf").write_bytes(b"%PDF")
        (folder / "orphan.pdf").write_bytes(b"%PDF")  # named by nothing: goes
        b.incoming_dir.mkdir(parents=True)
        (b.incoming_dir / "old.part").write_bytes(b"%PDF")
        b.recover(startup=True)
        assert sorted(p.name for p in folder.iterdir()) == ["inflight.pdf"]
        assert (a.incoming_dir / "upload.part").exists() and not b.incoming_dir.exists()
        assert [p[1] for p in b.catalog.pending()] == ["inflight"]
    # a died mid-import (its lock is free now): the next recovery removes what it left
    b.recover()
    assert list(folder.iterdir()) == [] and b.catalog.pending() == []
