"""FOR TESTS ONLY: the simulated file system."""

from os import PathLike
from typing import Optional, Union

class SimFs:
    """walstate's simulated, fault-injecting in-memory file system (tests only)."""

    def __init__(self, seed: int = 0) -> None: ...
    def inject(
        self, op: str, kind: str = "eio", *, nth: int = 0, persistent: bool = False
    ) -> None:
        """op: write, sync, set_len, rename, remove, sync_dir, create, read, writeback,
        any; kind: eio, enospc, short_write."""
    def clear_faults(self) -> None: ...
    def set_space_limit(self, limit: Optional[int]) -> None: ...
    def set_read_only_dir(self, path: Union[str, PathLike[str]], read_only: bool = True) -> None: ...
    def crash(self, mode: str = "drop_unsynced", seed: int = 0) -> None:
        """mode: drop_unsynced, keep_all, random (seeded)."""
    def set_sync_latency(self, seconds: Optional[float]) -> None: ...
    def used_bytes(self) -> int: ...
