"""A store written by the Rust CLI of the release before format version 2
(tests/fixtures/v1-store in the repository) opens from Python with every entry."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import walstate

FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "fixtures"


@pytest.fixture
def v1_store(tmp_path):
    if not (FIXTURES / "v1-store").is_dir():
        pytest.skip("tests/fixtures/v1-store is not in this checkout")
    copy = tmp_path / "v1-store"
    shutil.copytree(FIXTURES / "v1-store", copy)
    return copy


def test_v1_store_opens_with_every_entry(v1_store):
    export = json.loads((FIXTURES / "v1-store.export.json").read_text())
    expected = sorted((e["key"].encode(), e["value"].encode()) for e in export["entries"])
    with walstate.KvStore.open_read_only(v1_store) as r:
        assert r.items() == expected
        assert r.last_lsn == export["lsn"]
        assert r.recovery_report()["read_format_v1"] is True
    with walstate.KvStore(v1_store) as w:  # a writer opens it too, and writes
        w[b"new"] = b"from python"
    with walstate.KvStore(v1_store) as w:
        assert w[b"new"] == b"from python" and len(w) == len(expected) + 1


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "LOCK"
    }


def test_a_store_of_other_types_is_a_schema_error_and_is_left_as_it_was(tmp_path):
    # tests/fixtures/config-store: written by a Rust service with its own state type
    # (a `Config { listen, workers }` replaced by `Command::Save`), not the key-value
    # state this package opens.
    store = tmp_path / "config-store"
    shutil.copytree(FIXTURES / "config-store", store)
    before = _files(store)
    for open_it in (
        lambda: walstate.KvStore(store),
        lambda: walstate.JsonStore(store),
        lambda: walstate.open_read_only(store),
    ):
        with pytest.raises(walstate.SchemaError) as caught:
            open_it()
        assert not isinstance(caught.value, walstate.CorruptionError)
        assert "schema" in str(caught.value).lower(), str(caught.value)
    assert _files(store) == before, "a refused open changed the store"
    # verify reads a store of any types.
    report = walstate.verify(store)
    assert report["verdict"] == "clean", report
