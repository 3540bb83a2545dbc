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
