"""FOR TESTS ONLY: walstate's simulated, fault-injecting in-memory file system.

Nothing here is for production use. Open a store on it with the ``_sim`` keyword::

    from walstate._testing import SimFs
    sim = SimFs(seed=1)
    store = walstate.KvStore("/db", _sim=sim)
    sim.inject("write", "enospc")       # the next write fails: disk full
    sim.set_space_limit(64 * 1024)      # or: every write past 64 KiB fails
    sim.set_read_only_dir("/db")        # changes in /db fail with EACCES
    sim.crash("drop_unsynced")          # power loss; reopen the store afterwards
"""

from ._walstate import _testing as _native

SimFs = _native.SimFs

__all__ = ["SimFs"]
