"""walstate's exceptions. Every message is the core library's, and says what to do next.

All derive from :class:`Error`, itself an :class:`OSError`, so code that already handles
``OSError`` around file saves keeps working.
"""

from __future__ import annotations

from typing import Optional

__all__ = [
    "Error",
    "LockedError",
    "DiskFullError",
    "WalstatePermissionError",
    "CorruptionError",
    "SnapshotDamagedError",
    "PoisonedError",
    "SchemaError",
    "NotAStoreError",
    "UnsupportedVersionError",
    "SnapshotNotFoundError",
    "InvalidArgumentError",
    "ReadOnlyError",
    "ClosedError",
]


class Error(OSError):
    """Base class of every walstate error. ``path`` (also ``filename``, as on any
    OSError) is the file or directory involved, when there is one; ``errno`` is set for
    a full disk (ENOSPC), a permission denial (EACCES) and other OS errors."""

    path: Optional[str]

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.path = None

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class LockedError(Error):
    """Another process holds the writer lock (``holder``: e.g. ``"pid 1234"``)."""

    holder: Optional[str] = None


class DiskFullError(Error):
    """The disk is full: the operation was not done and the store is unchanged; it keeps
    working once space is freed."""


class WalstatePermissionError(Error, PermissionError):
    """The operating system refused access. Also a builtin :class:`PermissionError`."""


class CorruptionError(Error):
    """Damage a crash cannot explain: open refuses to guess. ``path``, ``offset`` and
    ``lsn`` locate it (``offset``/``lsn`` are None when no state can be rebuilt at
    all)."""

    offset: Optional[int] = None
    lsn: Optional[int] = None


class SnapshotDamagedError(CorruptionError):
    """A named snapshot's file is damaged; the store itself is unchanged."""


class PoisonedError(Error):
    """An earlier fsync (or unrecoverable write) failed: the store refuses all work until
    it is closed and reopened."""


class SchemaError(Error):
    """The store was written with other types or another codec."""


class NotAStoreError(Error):
    """The directory holds no walstate store (and ``create=False``), or holds files that
    are not a store's; nothing was changed."""


class UnsupportedVersionError(Error):
    """A file has another on-disk format version."""


class SnapshotNotFoundError(Error):
    """No snapshot has that name."""


class InvalidArgumentError(Error, ValueError):
    """An argument broke a documented limit. Also a :class:`ValueError`."""


class ReadOnlyError(Error):
    """A write on a store opened read-only."""


class ClosedError(Error):
    """The store was closed."""
