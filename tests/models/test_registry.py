"""The variant registry (on SQLite and PostgreSQL) and the name rule."""

import pytest

from api.errors import Conflict, InvalidInput
from api.models.registry import Variant, VariantRegistry
from api.names import check_name, is_valid_name


def test_add_get_list_remove(db_target):
    reg = VariantRegistry(db_target("registry"))
    added = reg.add(
        Variant(name="a", base_model="b", system_prompt="s", parameters={"temperature": 0.5})
    )
    assert added.created_at
    assert reg.get("a") == added
    assert reg.get("a").parameters == {"temperature": 0.5}
    assert [v.name for v in reg.list()] == ["a"]
    assert reg.remove("a") is True
    assert reg.remove("a") is False
    assert reg.get("a") is None


def test_duplicate_name_is_a_conflict(db_target):
    reg = VariantRegistry(db_target("registry"))
    reg.add(Variant(name="a", base_model="b"))
    with pytest.raises(Conflict, match="already exists"):
        reg.add(Variant(name="a", base_model="c"))
    assert reg.get("a").base_model == "b"


def test_registry_persists_across_instances(db_target):
    VariantRegistry(db_target("registry")).add(Variant(name="a", base_model="b"))
    assert VariantRegistry(db_target("registry")).get("a") is not None


def test_lineage_is_kept_and_an_older_registry_gains_the_column(tmp_path):
    import sqlite3

    path = tmp_path / "r.sqlite"
    with sqlite3.connect(path) as db:  # a registry written before lineage existed
        db.executescript(_SCHEMA_V1)
        db.execute("INSERT INTO variants VALUES ('old', 'b', NULL, NULL, '{}', NULL, NULL, 't')")
        db.execute("PRAGMA user_version = 1")
    reg = VariantRegistry(path)
    assert reg.get("old").lineage is None
    reg.add(Variant(name="new", base_model="b", lineage={"job": "ftjob-1", "parent_model": "old"}))
    assert reg.get("new").lineage == {"job": "ftjob-1", "parent_model": "old"}


_SCHEMA_V1 = """CREATE TABLE variants (name TEXT PRIMARY KEY, base_model TEXT NOT NULL,
system_prompt TEXT, template TEXT, parameters TEXT NOT NULL DEFAULT '{}', adapter_path TEXT,
gguf_path TEXT, created_at TEXT NOT NULL)"""


@pytest.mark.parametrize("name", ["a", "hr-bot", "v1.2_x", "0" * 63])
def test_valid_names(name):
    assert is_valid_name(name)
    assert check_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "A",
        "a/b",
        "a\\b",
        "..",
        "a..b",
        ".hidden",
        "-x",
        "x" * 64,
        "a b",
        "a\x00",
        "\u0430pple",
        "x\n",
    ],
)
def test_invalid_names(name):
    assert not is_valid_name(name)
    with pytest.raises(InvalidInput, match="Invalid model name"):
        check_name(name)
