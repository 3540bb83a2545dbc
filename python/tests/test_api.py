"""The API itself: mapping protocol, types, cas, batches, snapshots, errors."""

from __future__ import annotations

import errno

import pytest

import walstate


def test_mapping_protocol_and_methods(store_path):
    with walstate.KvStore(store_path) as s:
        assert len(s) == 0 and s.get(b"a") is None and b"a" not in s
        s[b"a"] = b"1"
        s.put(b"b/1", b"2")
        s.put(b"b/2", bytearray(b"3"))
        assert s[b"a"] == b"1" and s.get(b"b/2") == b"3"
        assert b"a" in s and "a" not in s and len(s) == 3
        assert list(s) == [b"a", b"b/1", b"b/2"]
        assert s.items(b"b/") == [(b"b/1", b"2"), (b"b/2", b"3")]
        assert s.items() == [(b"a", b"1"), (b"b/1", b"2"), (b"b/2", b"3")]
        assert s.keys(b"b/") == [b"b/1", b"b/2"] and s.values(b"b/") == [b"2", b"3"]
        assert s.keys() == [b"a", b"b/1", b"b/2"] and s.values() == [b"1", b"2", b"3"]
        with pytest.raises(KeyError):
            s[b"zz"]
        with pytest.raises(KeyError):
            del s[b"zz"]
        del s[b"a"]
        assert s.delete(b"b/1") is True and s.delete(b"b/1") is False
        assert s.pop(b"b/2") == b"3" and s.pop(b"b/2", None) is None
        assert len(s) == 0
        with pytest.raises(TypeError):
            s.put("str key", b"v")  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            s[b"k"] = "str value"  # type: ignore[assignment]
    assert s.closed
    with pytest.raises(walstate.ClosedError):
        s.get(b"a")
    s.close()  # idempotent


def test_values_survive_reopen(store_path):
    with walstate.KvStore(store_path) as s:
        s[b"k"] = b"\x00\xffbinary"
        s[b"gone"] = b"x"
        del s[b"gone"]
    with walstate.KvStore(store_path, create=False) as s:
        assert s.items() == [(b"k", b"\x00\xffbinary")]
        assert s.recovery_report()["created"] is False


def test_cas(store_path):
    with walstate.KvStore(store_path) as s:
        assert s.cas(b"leader", None, b"a") is True      # absent -> a
        assert s.cas(b"leader", None, b"b") is False     # not absent any more
        assert s.cas(b"leader", b"x", b"b") is False
        assert s[b"leader"] == b"a"
        assert s.cas(b"leader", b"a", b"b") is True
        assert s.cas(b"leader", b"b", None) is True      # delete
        assert b"leader" not in s


def test_json_store(store_path):
    value = {"listen": "0.0.0.0:8080", "workers": 8, "ratio": 0.5, "tags": ["a", "é"],
             "on": True, "none": None}
    with walstate.JsonStore(store_path) as s:
        s["config"] = value
        s["n"] = 3
        assert s["config"] == value and s.get("n") == 3 and s.get("x", 7) == 7
        assert "config" in s and b"config" not in s
        assert s.to_dict() == {"config": value, "n": 3}
        assert s.keys() == ["config", "n"] and s.values() == [value, 3] and list(s) == s.keys()
        assert s.items("c") == [("config", value)]
        assert s.cas("n", 3, 4) and not s.cas("n", 3, 5) and s["n"] == 4
        with pytest.raises(TypeError):
            s[b"bytes"] = 1  # type: ignore[index]
        with pytest.raises(ValueError):
            s["nan"] = float("nan")  # not JSON
        s.update({"a": 1}, b=2)
        assert s["a"] == 1 and s["b"] == 2
    with walstate.open_read_only(store_path, json=True) as r:
        assert isinstance(r, walstate.JsonStore) and r.read_only
        assert r["config"] == value
        with pytest.raises(walstate.ReadOnlyError):
            r["config"] = {}


def test_batch_is_atomic_and_reads_its_own_writes(store_path):
    with walstate.JsonStore(store_path) as s:
        s["a"] = 1
        lsn = s.last_lsn
        with s.batch() as b:
            b["a"] = 2
            b.put("b", 3)
            b.delete("c")
            assert b["a"] == 2 and b.get("c") is None and len(b) == 3
            assert s["a"] == 1  # nothing written before the block ends
        assert s["a"] == 2 and s["b"] == 3
        assert s.last_lsn == lsn + 3  # one group of three records
        with pytest.raises(ValueError):
            b.put("late", 1)
        with s.batch() as empty:
            pass
        assert s.last_lsn == lsn + 3 and len(empty) == 0


def test_snapshots(store_path):
    with walstate.KvStore(store_path) as s:
        s[b"v"] = b"1"
        info = s.snapshot("before")
        assert info["name"] == "before" and info["damage"] is None
        s[b"v"] = b"2"
        restored = s.restore_snapshot("before")
        assert s[b"v"] == b"1"
        names = {snap["name"] for snap in s.list_snapshots()}
        assert {"before", restored["previous_state_snapshot"]} <= names
        s.restore_snapshot(restored["previous_state_snapshot"])
        assert s[b"v"] == b"2"
        s.delete_snapshot("before")
        assert "before" not in {snap["name"] for snap in s.list_snapshots()}
        with pytest.raises(walstate.SnapshotNotFoundError) as err:
            s.restore_snapshot("before")
        assert "no snapshot named" in str(err.value)
        with pytest.raises(walstate.Error):
            s.snapshot("../escape")


def test_checkpoint_sync_refresh_report_verify(store_path):
    with walstate.KvStore(store_path, sync="interval", sync_interval=0.005) as s:
        for i in range(50):
            s[b"k%d" % i] = b"v"
        s.sync()
        cp = s.checkpoint()
        assert cp["lsn"] == 50 and cp["bytes"] > 0
        assert s.refresh()["last_lsn"] == 50
        report = s.recovery_report()
        assert report["created"] is True and report["read_only"] is False
        stats = s.journal_stats()
        assert stats is not None and stats["records"] == 50
    report = walstate.verify(store_path)
    assert report["verdict"] == "clean", report
    with walstate.KvStore(store_path) as s:
        rr = s.recovery_report()
        assert rr["checkpoint"]["lsn"] == 50 and rr["last_lsn"] == 50


def test_options_are_checked(store_path):
    with pytest.raises(ValueError):
        walstate.KvStore(store_path, sync="sometimes")
    with pytest.raises(ValueError):
        walstate.KvStore(store_path, lock_timeout=-1)
    with pytest.raises(walstate.InvalidArgumentError) as err:
        walstate.KvStore(store_path, checkpoint_after_bytes=0)
    assert isinstance(err.value, ValueError) and isinstance(err.value, walstate.Error)
    with pytest.raises(walstate.NotAStoreError):
        walstate.KvStore(store_path / "missing", create=False)


def test_exception_hierarchy():
    for cls in (walstate.LockedError, walstate.DiskFullError, walstate.CorruptionError,
                walstate.PoisonedError, walstate.SchemaError, walstate.NotAStoreError,
                walstate.WalstatePermissionError, walstate.ClosedError):
        assert issubclass(cls, walstate.Error) and issubclass(cls, OSError)
    assert issubclass(walstate.WalstatePermissionError, PermissionError)
    assert issubclass(walstate.SnapshotDamagedError, walstate.CorruptionError)
    assert not issubclass(walstate.DiskFullError, PermissionError)
    assert walstate.Error.__module__ == "walstate"
    assert errno.ENOSPC == 28


def test_json_cas_compares_json_values(store_path):
    with walstate.JsonStore(store_path) as s:
        s["lease"] = {"holder": "a", "term": 1}
        # Same object, other key order: equal as JSON.
        assert s.cas("lease", {"term": 1, "holder": "a"}, {"holder": "b", "term": 2})
        assert s["lease"] == {"holder": "b", "term": 2}
        assert not s.cas("lease", {"holder": "b", "term": 2.0}, {"holder": "c"})  # 2 != 2.0
        assert not s.cas("lease", None, {"holder": "c"})  # present, not absent
        assert s.cas("lease", {"holder": "b", "term": 2}, None)  # delete
        assert "lease" not in s
        assert s.cas("lease", None, {"holder": "d"})
        assert s["lease"] == {"holder": "d"}


def test_json_cas_sees_another_process_first(store_path):
    from conftest import run_python

    with walstate.JsonStore(store_path) as s:
        s["lease"] = {"holder": "a"}
        run_python(
            "import sys, walstate\n"
            "with walstate.JsonStore(sys.argv[1]) as o: o['lease'] = {'holder': 'z'}",
            str(store_path),
        )
        assert s["lease"] == {"holder": "a"}  # not refreshed yet
        assert not s.cas("lease", {"holder": "a"}, {"holder": "b"})
        assert s["lease"] == {"holder": "z"}  # the failed swap caught up
        run_python(
            "import sys, walstate\n"
            "with walstate.JsonStore(sys.argv[1]) as o: o['lease'] = {'holder': 'y'}",
            str(store_path),
        )
        # Stale locally ('z'), but equal to what is stored ('y'): the swap lands.
        assert s.cas("lease", {"holder": "y"}, {"holder": "c"})
        assert s["lease"] == {"holder": "c"}


@pytest.mark.parametrize("sync", ["never", "interval", "buffered"])
def test_relaxed_sync_policies_are_durable_after_sync_and_close(sync):
    from walstate._testing import SimFs

    sim = SimFs(21)
    s = walstate.KvStore("/db", _sim=sim, sync=sync, sync_interval=60)
    s[b"a"] = b"1"
    s.sync()
    s[b"b"] = b"2"
    s.close()  # makes everything acknowledged durable
    sim.crash("drop_unsynced")
    with walstate.KvStore("/db", _sim=sim) as again:
        assert again.items() == [(b"a", b"1"), (b"b", b"2")]
    assert walstate.verify("/db", _sim=sim)["verdict"] == "clean"


def test_reader_beside_writer_sees_commits_after_refresh(store_path):
    with walstate.KvStore(store_path) as w, walstate.open_read_only(store_path) as r:
        w[b"k"] = b"1"
        assert r.get(b"k") is None
        assert r.refresh()["records"] == 1
        assert r[b"k"] == b"1"
        assert r.journal_stats() is None and r.read_only
        with pytest.raises(walstate.ReadOnlyError):
            r.checkpoint()
