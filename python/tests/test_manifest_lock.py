"""A manifest and its lock file updated together: one batch, all or nothing — also
when the block raises, when the fsync fails, and across a crash; restore_snapshot
rolls both back together."""

from __future__ import annotations

import pytest

import walstate
from walstate._testing import SimFs

MANIFEST_1 = {"packages": {"requests": ">=2"}}
LOCK_1 = {"requests": "2.31.0", "urllib3": "2.0.7"}
MANIFEST_2 = {"packages": {"requests": ">=2", "rich": "*"}}
LOCK_2 = {"requests": "2.32.3", "urllib3": "2.2.1", "rich": "13.7.1"}


def save(store, manifest, lock):
    with store.batch() as b:
        b["manifest"] = manifest
        b["lock"] = lock


def test_manifest_and_lock_in_one_batch(store_path):
    with walstate.JsonStore(store_path) as s:
        save(s, MANIFEST_1, LOCK_1)
        lsn = s.last_lsn
        assert (s["manifest"], s["lock"]) == (MANIFEST_1, LOCK_1)

        class ResolverFailed(Exception):
            pass

        with pytest.raises(ResolverFailed):
            with s.batch() as b:
                b["manifest"] = MANIFEST_2
                raise ResolverFailed("no version of rich fits")
                b["lock"] = LOCK_2  # noqa: unreachable
        # Neither changed, and nothing was logged.
        assert (s["manifest"], s["lock"]) == (MANIFEST_1, LOCK_1)
        assert s.last_lsn == lsn

        s.snapshot("v1")
        save(s, MANIFEST_2, LOCK_2)
        assert (s["manifest"], s["lock"]) == (MANIFEST_2, LOCK_2)
        info = s.restore_snapshot("v1")
        assert (s["manifest"], s["lock"]) == (MANIFEST_1, LOCK_1)
        assert info["snapshot"] == "v1"
    # The rollback is durable.
    with walstate.JsonStore(store_path) as s:
        assert (s["manifest"], s["lock"]) == (MANIFEST_1, LOCK_1)
        # And the replaced pair was kept.
        s.restore_snapshot(info["previous_state_snapshot"])
        assert (s["manifest"], s["lock"]) == (MANIFEST_2, LOCK_2)


def test_batch_commit_failure_changes_neither():
    sim = SimFs(11)
    s = walstate.JsonStore("/proj", _sim=sim)
    save(s, MANIFEST_1, LOCK_1)
    sim.inject("write", "enospc")
    with pytest.raises(walstate.DiskFullError):
        save(s, MANIFEST_2, LOCK_2)
    assert (s["manifest"], s["lock"]) == (MANIFEST_1, LOCK_1)
    save(s, MANIFEST_2, LOCK_2)  # works once space is back
    assert (s["manifest"], s["lock"]) == (MANIFEST_2, LOCK_2)


@pytest.mark.parametrize("seed", range(12))
def test_crash_during_batch_gives_both_or_neither(seed):
    """Crash with every unsynced piece kept, lost or zeroed at random while the second
    pair is being committed: after recovery it is the first pair or the second, never
    a mix."""
    sim = SimFs(seed)
    s = walstate.JsonStore("/proj", _sim=sim, sync="never")
    save(s, MANIFEST_1, LOCK_1)
    s.sync()  # the first pair is durable
    save(s, MANIFEST_2, LOCK_2)  # acknowledged but not synced (sync="never")
    sim.crash("random", seed)
    del s
    with walstate.JsonStore("/proj", _sim=sim) as again:
        pair = (again["manifest"], again["lock"])
        assert pair in [(MANIFEST_1, LOCK_1), (MANIFEST_2, LOCK_2)]
