"""A daemon and a CLI: one process holds the store open, others write to it; a foreign
directory is refused untouched; damaged segment files are refused with their location,
and nothing is lost."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import walstate

from conftest import run_python, tree_digest

CLI = """
import sys, walstate
path, key, value = sys.argv[1:4]
with walstate.KvStore(path, lock_timeout=5) as s:
    s[key.encode()] = value.encode()
    print(s.last_lsn)
"""


def test_cli_process_writes_while_daemon_has_it_open(store_path):
    daemon = walstate.KvStore(store_path)
    daemon[b"mode"] = b"serving"
    run_python(CLI, str(store_path), "mode", "maintenance")
    run_python(CLI, str(store_path), "admin/note", "from the cli")
    # Reads alone do not look at the disk; refresh catches up.
    assert daemon[b"mode"] == b"serving"
    refreshed = daemon.refresh()
    assert refreshed["records"] == 2 and refreshed["last_lsn"] == 3
    assert daemon[b"mode"] == b"maintenance"
    assert daemon[b"admin/note"] == b"from the cli"
    # Compare-and-set is evaluated against every process's commits.
    assert daemon.cas(b"mode", b"maintenance", b"serving") is True
    run_python(CLI, str(store_path), "mode", "off")
    assert daemon.cas(b"mode", b"serving", b"draining") is False  # catches up first
    assert daemon[b"mode"] == b"off"
    daemon.close()
    with walstate.KvStore.open_read_only(store_path) as r:
        assert r[b"mode"] == b"off" and len(r) == 2


def test_exclusive_daemon_refuses_other_writers(store_path):
    with walstate.KvStore(store_path, exclusive=True) as daemon:
        daemon[b"k"] = b"v"
        result = run_python(
            """
            import os, sys, walstate
            try:
                walstate.KvStore(sys.argv[1], lock_timeout=0.2)
            except walstate.LockedError as err:
                print(err.holder)
                print(err)
            """,
            str(store_path),
        )
        holder, message = result.stdout.splitlines()[:2]
        assert holder == f"pid {os.getpid()}"
        assert "locked by another writer" in message
        # A reader is still welcome beside it.
        run_python(
            "import sys, walstate; assert walstate.open_read_only(sys.argv[1])[b'k'] == b'v'",
            str(store_path),
        )


def test_someone_elses_directory_is_refused_and_left_untouched(tmp_path):
    other = tmp_path / "photos"
    other.mkdir()
    (other / "IMG_0001.jpg").write_bytes(os.urandom(5000))
    (other / "notes.txt").write_text("do not touch")
    before = tree_digest(other)
    for cls in (walstate.KvStore, walstate.JsonStore):
        with pytest.raises(walstate.NotAStoreError) as err:
            cls(other)
        assert str(other) in str(err.value) and "not a walstate store" in str(err.value)
    with pytest.raises(walstate.NotAStoreError):
        walstate.verify(other)
    assert tree_digest(other) == before
    assert sorted(os.listdir(other)) == ["IMG_0001.jpg", "notes.txt"]


def _filled_store(path: Path, n: int = 300):
    with walstate.KvStore(path) as s:
        for i in range(n):
            s[b"key/%04d" % i] = b"value %04d " % i + b"." * 80
    segments = sorted(path.glob("wal-*.seg"))
    assert len(segments) == 1
    return segments[0]


def test_garbage_in_a_segment_is_corruption_with_its_location(store_path):
    segment = _filled_store(store_path)
    with open(segment, "r+b") as f:
        f.seek(12_000)  # well inside the synced records
        f.write(os.urandom(64))
    # The writer lock file names the last process that tried to write: not data.
    before = tree_digest(store_path, ignore=("LOCK",))
    with pytest.raises(walstate.CorruptionError) as err:
        walstate.KvStore(store_path)
    e = err.value
    assert e.path == str(segment) and e.filename == e.path
    assert isinstance(e.offset, int) and 0 < e.offset <= 12_064
    assert isinstance(e.lsn, int) and e.lsn >= 1
    assert f"offset {e.offset}" in str(e) and "walstate repair --salvage" in str(e)
    # Nothing was changed or removed by the refused open, nor by a read-only one.
    with pytest.raises(walstate.CorruptionError):
        walstate.open_read_only(store_path)
    assert tree_digest(store_path, ignore=("LOCK",)) == before
    assert walstate.verify(store_path)["verdict"] != "clean"
    # Salvage keeps the valid prefix and moves the damage to quarantine/, deleting
    # nothing.
    with walstate.KvStore(store_path, salvage=True) as s:
        kept = len(s)
        assert 0 < kept < 300 and s.items()[0] == (b"key/0000", b"value 0000 " + b"." * 80)
        assert s.recovery_report()["salvaged"]
    quarantined = list((store_path / "quarantine").rglob("*"))
    assert any(p.is_file() for p in quarantined)


def test_a_garbage_file_named_like_a_segment_is_refused(store_path):
    _filled_store(store_path, 50)
    junk = store_path / "wal-00000000000000000007.seg"
    junk.write_bytes(os.urandom(8192))
    before = tree_digest(store_path, ignore=("LOCK",))
    with pytest.raises(walstate.CorruptionError) as err:
        walstate.KvStore(store_path)
    assert Path(err.value.path) == junk
    assert err.value.offset == 0 and err.value.lsn == 51  # the LSN after the last good one
    assert tree_digest(store_path, ignore=("LOCK",)) == before
    junk.unlink()  # the operator removes the stray file: every record is back
    with walstate.KvStore(store_path) as s:
        assert len(s) == 50


def test_a_damaged_snapshot_is_refused_and_the_store_is_unchanged(store_path):
    with walstate.KvStore(store_path) as s:
        s[b"k"] = b"before"
        info = s.snapshot("nightly")
        s[b"k"] = b"after"
        snap = Path(info["path"])
        data = bytearray(snap.read_bytes())
        data[len(data) // 2] ^= 0xFF
        snap.write_bytes(bytes(data))
        damaged = {x["name"]: x["damage"] for x in s.list_snapshots()}
        assert damaged["nightly"] is not None
        with pytest.raises(walstate.SnapshotDamagedError) as err:
            s.restore_snapshot("nightly")
        assert isinstance(err.value, walstate.CorruptionError)
        assert Path(err.value.path) == snap and "store itself is unchanged" in str(err.value)
        assert s[b"k"] == b"after"
        s[b"k2"] = b"still works"
    with walstate.KvStore(store_path) as s:
        assert s.items() == [(b"k", b"after"), (b"k2", b"still works")]


def test_a_lock_that_is_a_directory_is_an_error_not_a_held_lock(store_path):
    with walstate.KvStore(store_path) as s:
        s[b"k"] = b"v"
    (store_path / "LOCK").unlink()
    (store_path / "LOCK").mkdir()
    with pytest.raises(walstate.Error) as err:
        with walstate.KvStore(store_path) as s:
            s[b"k"] = b"w"
    assert not isinstance(err.value, walstate.LockedError)
    assert "not a regular file" in str(err.value)
    (store_path / "LOCK").rmdir()
    with walstate.KvStore(store_path) as s:
        assert s[b"k"] == b"v"
