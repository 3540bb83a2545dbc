"""Several Python threads using one store at once: the GIL is released around every
commit, so their commits share fdatasyncs (group commit), and everything is there
after reopening."""

from __future__ import annotations

import threading
import time

import walstate
from walstate._testing import SimFs

THREADS = 8


def hammer(store, per_thread, make_key):
    errors = []
    barrier = threading.Barrier(THREADS)

    def work(t):
        try:
            barrier.wait()
            for i in range(per_thread):
                store.put(make_key(t, i), b"%d:%d" % (t, i))
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors


def test_concurrent_puts_all_present_after_reopen(store_path):
    per_thread = 150
    with walstate.KvStore(store_path) as s:
        hammer(s, per_thread, lambda t, i: b"t%d/%05d" % (t, i))
        assert len(s) == THREADS * per_thread
    with walstate.KvStore(store_path) as s:
        assert len(s) == THREADS * per_thread
        for t in range(THREADS):
            assert s.keys(b"t%d/" % t) == [b"t%d/%05d" % (t, i) for i in range(per_thread)]
            assert s[b"t%d/%05d" % (t, per_thread - 1)] == b"%d:%d" % (t, per_thread - 1)


def test_threads_share_fdatasyncs():
    """With a 5 ms fsync, 8 threads x 25 durable puts: if the GIL were held during a
    commit, every put would pay its own fsync (200 syncs, >= 1 s); group commit needs
    the threads to be in the store at the same time."""
    sim = SimFs(5)
    sim.set_sync_latency(0.005)
    s = walstate.KvStore("/db", _sim=sim, checkpoint_after_bytes=None)
    started = time.monotonic()
    hammer(s, 25, lambda t, i: b"t%d/%03d" % (t, i))
    elapsed = time.monotonic() - started
    stats = s.journal_stats()
    assert stats["records"] == THREADS * 25
    assert stats["syncs"] < stats["records"] / 2, (stats, elapsed)
    sim.crash("drop_unsynced")  # acknowledged means durable
    del s
    with walstate.KvStore("/db", _sim=sim) as again:
        assert len(again) == THREADS * 25


def test_a_blocked_commit_does_not_block_other_python_threads():
    sim = SimFs(6)
    s = walstate.KvStore("/db", _sim=sim)
    sim.set_sync_latency(0.3)
    done = threading.Event()

    def slow_put():
        s.put(b"k", b"v")
        done.set()

    th = threading.Thread(target=slow_put)
    th.start()
    spins = 0
    while not done.is_set():
        spins += 1
        time.sleep(0.001)
    th.join()
    assert spins > 50  # the main thread ran while the put waited for its fsync
    sim.set_sync_latency(None)
    assert s[b"k"] == b"v"
    s.close()
