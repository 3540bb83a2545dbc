"""A config manager: a save that fails (full disk, read-only directory, failed fsync)
keeps the old config, in memory and on disk, and the store works again afterwards.

Real file systems first (a small tmpfs, filled up or remounted read-only; a real
permission denial for an unprivileged process), then the same paths on the simulated
file system, which can fail exactly one call.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

import walstate
from walstate._testing import SimFs

from conftest import mounted_tmpfs, remount, run_python, tree_digest

V1 = {"listen": "0.0.0.0:8080", "workers": 4, "version": 1}


def fill_disk(path: Path) -> None:
    """Writes `path` until the file system is full (ENOSPC)."""
    chunk = b"\xaa" * 65536
    with open(path, "wb", buffering=0) as f:
        while True:
            try:
                f.write(chunk)
            except OSError as err:
                assert err.errno == errno.ENOSPC, err
                break
        # Fill the last partial chunk's worth too.
        while True:
            try:
                f.write(b"\xaa" * 512)
            except OSError:
                break


def test_save_on_a_real_full_disk_keeps_the_old_config(tmp_path):
    with mounted_tmpfs(tmp_path, "8m") as mnt:
        store_dir = mnt / "config"
        config = walstate.JsonStore(store_dir)
        config["service"] = V1
        fill_disk(mnt / "filler")
        # The journal preallocates its segment, so the first saves on a full disk still
        # land in space it reserved; keep saving bigger configs until the disk says no.
        last_saved = V1
        failure = None
        for version in range(2, 200):
            new = {**V1, "version": version, "blob": "x" * 200_000}
            try:
                config["service"] = new
            except walstate.DiskFullError as err:
                failure = err
                break
            last_saved = new
        assert failure is not None, "the disk never filled up"
        assert isinstance(failure, OSError) and failure.errno == errno.ENOSPC
        assert "no space left" in str(failure) and "free disk space" in str(failure)
        assert failure.path is not None and str(failure.path).startswith(str(store_dir))
        # Memory still holds the last config that was saved, not the failed one.
        assert config["service"] == last_saved
        # On disk too: a read-only open beside it (writes nothing) sees the same.
        with walstate.JsonStore.open_read_only(store_dir) as reader:
            assert reader["service"] == last_saved
        # Free space: the same store saves again, no reopen needed.
        os.remove(mnt / "filler")
        final = {**V1, "version": 999}
        config["service"] = final
        config.close()
        with walstate.JsonStore(store_dir) as again:
            assert again["service"] == final
            assert again.recovery_report()["torn_tail"] is None


def test_read_only_remount_keeps_the_old_config(tmp_path):
    with mounted_tmpfs(tmp_path, "16m") as mnt:
        store_dir = mnt / "config"
        with walstate.JsonStore(store_dir) as config:
            config["service"] = V1
        before = tree_digest(store_dir)
        remount(mnt, "ro")
        try:
            # A writer cannot take the lock on a read-only file system: refused, and
            # the message says which file and why.
            with pytest.raises(walstate.Error) as err:
                walstate.JsonStore(store_dir)
            assert err.value.errno == errno.EROFS, err.value
            assert "LOCK" in str(err.value)
            # The config is still readable, and saving through a reader is refused.
            with walstate.JsonStore.open_read_only(store_dir) as reader:
                assert reader["service"] == V1
                with pytest.raises(walstate.ReadOnlyError):
                    reader["service"] = {**V1, "version": 2}
                assert reader["service"] == V1
        finally:
            remount(mnt, "rw")
        assert tree_digest(store_dir) == before  # not a byte changed
        with walstate.JsonStore(store_dir) as config:
            assert config["service"] == V1
            config["service"] = {**V1, "version": 2}
        with walstate.JsonStore(store_dir) as config:
            assert config["service"]["version"] == 2


NOBODY = 65534

CHILD_NO_PERMISSION = """
import json, sys, walstate
out = {}
try:
    walstate.JsonStore(sys.argv[1])
    out["open"] = "opened"
except walstate.Error as err:
    out["open"] = type(err).__name__
    out["is_permission_error"] = isinstance(err, PermissionError)
    out["message"] = str(err)
with walstate.JsonStore.open_read_only(sys.argv[1]) as reader:
    out["config"] = reader["service"]
print(json.dumps(out))
"""


def test_directory_without_write_permission(tmp_path):
    """As an unprivileged user (root ignores modes), a store directory it may not write:
    opening for writing is a PermissionError naming the file, and nothing changes."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run the child as another user")
    probe = run_python("import walstate", user=NOBODY, check=False)
    if probe.returncode != 0:
        pytest.skip(f"an unprivileged child cannot import walstate: {probe.stderr[-300:]}")
    # Under /tmp, not pytest's tmp_path: its parent is private to root.
    base = Path(tempfile.mkdtemp(prefix="walstate-perm-"))
    try:
        _check_no_permission(base)
    finally:
        shutil.rmtree(base)


def _check_no_permission(base: Path) -> None:
    os.chmod(base, 0o755)
    store_dir = base / "config"
    with walstate.JsonStore(store_dir) as config:
        config["service"] = V1
    before = tree_digest(store_dir)
    result = run_python(CHILD_NO_PERMISSION, str(store_dir), user=NOBODY)
    out = json.loads(result.stdout)
    assert out["open"] == "WalstatePermissionError", out
    assert out["is_permission_error"] is True
    assert "permission denied" in out["message"] and str(store_dir) in out["message"]
    assert out["config"] == V1
    assert tree_digest(store_dir) == before


# -- the same paths on the simulated file system ---------------------------------------


def test_sim_disk_full_once_then_works():
    sim = SimFs(1)
    config = walstate.JsonStore("/etc/svc", _sim=sim)
    config["service"] = V1
    sim.inject("write", "enospc")
    with pytest.raises(walstate.DiskFullError) as err:
        config["service"] = {**V1, "version": 2}
    assert "the commit was not made" in str(err.value)
    assert config["service"] == V1
    config["service"] = {**V1, "version": 3}  # space is back: works, no reopen
    sim.crash("drop_unsynced")                # power loss right after
    with walstate.JsonStore("/etc/svc", _sim=sim) as again:
        assert again["service"]["version"] == 3


def test_sim_space_limit_then_crash():
    sim = SimFs(2)
    config = walstate.JsonStore("/etc/svc", _sim=sim)
    config["service"] = V1
    sim.set_space_limit(sim.used_bytes() + 1024)
    # Saves land in the segment's preallocated space until it is used up.
    last_saved = V1
    for version in range(2, 100):
        new = {**V1, "version": version, "blob": "y" * 500_000}
        try:
            config["service"] = new
        except walstate.DiskFullError:
            break
        last_saved = new
    else:
        pytest.fail("the space limit never stopped a save")
    assert config["service"] == last_saved
    sim.crash("drop_unsynced")
    sim.set_space_limit(None)
    with walstate.JsonStore("/etc/svc", _sim=sim) as again:
        assert again["service"] == last_saved


def test_sim_read_only_directory():
    sim = SimFs(3)
    config = walstate.JsonStore("/etc/svc", _sim=sim)
    config["service"] = V1
    sim.set_read_only_dir("/etc/svc", True)
    # Creating a file there (a checkpoint, a snapshot) is refused as a PermissionError.
    with pytest.raises(walstate.WalstatePermissionError) as err:
        config.checkpoint()
    assert isinstance(err.value, PermissionError)
    assert config["service"] == V1
    config.close()
    with walstate.JsonStore("/etc/svc", _sim=sim) as again:
        assert again["service"] == V1
        with pytest.raises(PermissionError):
            again.snapshot("before-upgrade")
    sim.set_read_only_dir("/etc/svc", False)
    with walstate.JsonStore("/etc/svc", _sim=sim) as again:
        assert again["service"] == V1
        assert again.checkpoint()["lsn"] == 1


def test_sim_failed_fsync_poisons_and_the_old_config_survives_a_crash():
    sim = SimFs(4)
    config = walstate.JsonStore("/etc/svc", _sim=sim)
    config["service"] = V1
    sim.inject("sync", "eio")
    with pytest.raises(walstate.Error):
        config["service"] = {**V1, "version": 2}
    # After a failed fsync nothing more is acknowledged until a reopen.
    with pytest.raises(walstate.PoisonedError) as err:
        config["service"] = {**V1, "version": 3}
    assert "close and reopen" in str(err.value)
    sim.crash("drop_unsynced")
    with walstate.JsonStore("/etc/svc", _sim=sim) as again:
        assert again["service"] == V1
        again["service"] = {**V1, "version": 4}
    with walstate.JsonStore("/etc/svc", _sim=sim) as again:
        assert again["service"]["version"] == 4


FAULTS = [
    ("write", "enospc"), ("write", "eio"), ("write", "short_write"), ("sync", "eio"),
    ("rename", "eio"), ("sync_dir", "eio"), ("set_len", "eio"), ("create", "enospc"),
    ("remove", "eio"), ("any", "eio"),
]


@pytest.mark.parametrize("op,kind", FAULTS)
@pytest.mark.parametrize("nth", [0, 1, 3])
def test_sim_every_fault_class_keeps_the_last_acknowledged_config(op, kind, nth):
    """A fault of each class at one of the next few calls, during saves and a
    checkpoint: whatever fails, memory never shows an unacknowledged config, and after
    a crash the store holds the last acknowledged one (or the one in flight)."""
    sim = SimFs(nth)
    config = walstate.JsonStore("/etc/svc", _sim=sim)
    config["service"] = V1
    acked = V1
    sim.inject(op, kind, nth=nth)
    in_flight = None
    for version in range(2, 6):
        new = {**V1, "version": version}
        try:
            config["service"] = new
            acked = new
            if version == 3:
                config.checkpoint()
        except walstate.Error:
            in_flight = new
            try:
                assert config["service"] == acked
            except walstate.PoisonedError:
                pass  # after a failed fsync even reads refuse until a reopen
            break
    sim.crash("drop_unsynced")
    del config
    with walstate.JsonStore("/etc/svc", _sim=sim) as again:
        assert again["service"] in (acked, in_flight)
        again["service"] = {**V1, "version": 100}
    with walstate.JsonStore("/etc/svc", _sim=sim) as again:
        assert again["service"]["version"] == 100
