"""walstate: a crash-safe, write-ahead-log backed state store.

The file you cannot lose (a config, crash-recovery state, a manifest and its lock), kept
in an embedded store that survives ``kill -9``, power loss, full disks and failed fsyncs.
Every write is durable when the call returns (``sync="always"``, the default); a
:meth:`KvStore.batch` is one atomic commit.

>>> import walstate
>>> with walstate.JsonStore(path) as config:                         # doctest: +SKIP
...     config["listen"] = "0.0.0.0:8080"                           # durable now
...     with config.batch() as b:                                   # all or nothing
...         b["workers"] = 8
...         b["mode"] = "serving"

:class:`KvStore` maps ``bytes`` to ``bytes``; :class:`JsonStore` maps ``str`` to any
JSON value. Both are safe to share between threads (concurrent writers share one
fdatasync) and between processes (another process's writes are seen after
:meth:`~KvStore.refresh`). Errors are :class:`walstate.Error` (an ``OSError``)
subclasses; their message says what to do next.
"""

from __future__ import annotations

import json
import os
import sys
from typing import (
    Any,
    Dict,
    Generic,
    Iterator,
    List,
    Optional,
    Tuple,
    TypeVar,
    Union,
)

from . import _walstate
from ._errors import (
    ClosedError,
    CorruptionError,
    DiskFullError,
    Error,
    InvalidArgumentError,
    LockedError,
    NotAStoreError,
    PoisonedError,
    ReadOnlyError,
    SchemaError,
    SnapshotDamagedError,
    SnapshotNotFoundError,
    UnsupportedVersionError,
    WalstatePermissionError,
)

__version__: str = _walstate.__version__

from . import _errors

# The exceptions show as walstate.<Name>, where users catch them.
for _name in _errors.__all__:
    getattr(_errors, _name).__module__ = "walstate"
del _name

__all__ = ["KvStore", "JsonStore", "Batch", "verify", "open_read_only"] + _errors.__all__

PathLike = Union[str, "os.PathLike[str]"]
JsonValue = Any  # dict | list | str | int | float | bool | None

K = TypeVar("K")
V = TypeVar("V")

_MISSING: Any = object()


def _obj(text: str) -> Dict[str, Any]:
    value: Dict[str, Any] = json.loads(text)
    return value


def _canon(value: Any) -> str:
    """A JSON value's canonical text: equal values, equal text."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _objs(text: str) -> List[Dict[str, Any]]:
    value: List[Dict[str, Any]] = json.loads(text)
    return value


class _Base(Generic[K, V]):
    """What KvStore and JsonStore share; subclasses convert keys and values."""

    _native: "_walstate.NativeStore"

    def __init__(
        self,
        path: PathLike,
        *,
        sync: str = "always",
        sync_interval: float = 0.01,
        create: bool = True,
        lock_timeout: Optional[float] = None,
        exclusive: bool = False,
        checkpoint_after_bytes: Optional[int] = 32 << 20,
        salvage: bool = False,
        read_only: bool = False,
        _sim: Any = None,
    ) -> None:
        self._native = _walstate.NativeStore.open(
            os.fspath(path),
            sync=sync,
            sync_interval=sync_interval,
            create=create,
            lock_timeout=lock_timeout,
            exclusive=exclusive,
            checkpoint_after_bytes=checkpoint_after_bytes,
            salvage=salvage,
            read_only=read_only,
            sim=_sim,
        )

    # -- conversions (overridden by JsonStore) --------------------------------------
    def _key(self, key: K) -> bytes:
        raise NotImplementedError

    def _unkey(self, raw: bytes) -> K:
        raise NotImplementedError

    def _value(self, value: V) -> bytes:
        raise NotImplementedError

    def _unvalue(self, raw: bytes) -> V:
        raise NotImplementedError

    # -- reads (memory only: no I/O) ------------------------------------------------
    def get(self, key: K, default: Any = None) -> Any:
        """The value of ``key``, or ``default`` (None) when it is absent."""
        raw = self._native.get(self._key(key))
        return default if raw is None else self._unvalue(raw)

    def __getitem__(self, key: K) -> V:
        raw = self._native.get(self._key(key))
        if raw is None:
            raise KeyError(key)
        return self._unvalue(raw)

    def __contains__(self, key: object) -> bool:
        try:
            raw_key = self._key(key)  # type: ignore[arg-type]
        except (TypeError, UnicodeError):
            return False
        return self._native.contains(raw_key)

    def __len__(self) -> int:
        return self._native.len()

    def __iter__(self) -> Iterator[K]:
        return iter(self.keys())

    def keys(self, prefix: Any = None) -> List[K]:
        """Every key (starting with ``prefix``, if given), in key order."""
        raw_prefix = b"" if prefix is None else self._key(prefix)
        return [self._unkey(k) for k in self._native.keys(raw_prefix)]

    def items(self, prefix: Any = None) -> List[Tuple[K, V]]:
        """Every ``(key, value)`` (whose key starts with ``prefix``), in key order: a
        consistent copy, taken at once."""
        raw_prefix = b"" if prefix is None else self._key(prefix)
        return [
            (self._unkey(k), self._unvalue(v))
            for k, v in self._native.scan_prefix(raw_prefix)
        ]

    def values(self, prefix: Any = None) -> List[V]:
        """Every value (of keys starting with ``prefix``), in key order."""
        pairs = self.items() if prefix is None else self.items(prefix)
        return [v for _, v in pairs]

    # -- writes (durable when they return, under sync="always") ---------------------
    def put(self, key: K, value: V) -> None:
        """Sets ``key`` to ``value``, durably."""
        self._native.put(self._key(key), self._value(value))

    def __setitem__(self, key: K, value: V) -> None:
        self._native.put(self._key(key), self._value(value))

    def delete(self, key: K) -> bool:
        """Deletes ``key`` durably; returns whether it was there."""
        return self._native.delete(self._key(key)) is not None

    def __delitem__(self, key: K) -> None:
        if self._native.delete(self._key(key)) is None:
            raise KeyError(key)

    def pop(self, key: K, default: Any = _MISSING) -> Any:
        """Deletes ``key`` durably and returns its value (``default``, or KeyError, when
        absent)."""
        raw = self._native.delete(self._key(key))
        if raw is None:
            if default is _MISSING:
                raise KeyError(key)
            return default
        return self._unvalue(raw)

    def cas(self, key: K, expected: Optional[V], new: Optional[V]) -> bool:
        """Compare-and-set: when ``key`` holds ``expected`` (None: is absent), sets it to
        ``new`` (None: deletes it) and returns True; otherwise changes nothing and
        returns False. Evaluated against every commit before it, by any process.

        (For a JsonStore, a JSON ``null`` value cannot be expected or set this way:
        None always means absent.)"""
        return self._native.cas(
            self._key(key),
            None if expected is None else self._value(expected),
            None if new is None else self._value(new),
        )

    def batch(self) -> "Batch[K, V]":
        """A batch: ``with store.batch() as b: b.put(...); b.delete(...)`` commits every
        operation in ONE atomic durable commit when the block ends, and nothing at all
        if the block raises. After a crash all of it is there or none."""
        return Batch(self)

    def update(self, other: Any = (), **kwargs: V) -> None:
        """Like ``dict.update``, as one atomic batch."""
        with self.batch() as b:
            items = other.items() if hasattr(other, "items") else other
            for k, v in items:
                b.put(k, v)
            for k, v in kwargs.items():
                b.put(k, v)  # type: ignore[arg-type]

    # -- store management -----------------------------------------------------------
    def snapshot(self, name: str) -> Dict[str, Any]:
        """Saves the current state as snapshot ``name``; returns its info."""
        return _obj(self._native.snapshot(name))

    def restore_snapshot(self, name: str) -> Dict[str, Any]:
        """Replaces the whole state by snapshot ``name``, atomically and durably; the
        replaced state is kept as an automatic snapshot (named in the result)."""
        return _obj(self._native.restore_snapshot(name))

    def list_snapshots(self) -> List[Dict[str, Any]]:
        """The snapshots: name, lsn, bytes, path, damage (None when intact)."""
        return _objs(self._native.list_snapshots())

    def delete_snapshot(self, name: str) -> None:
        """Deletes snapshot ``name``."""
        self._native.delete_snapshot(name)

    def checkpoint(self) -> Dict[str, Any]:
        """Writes a checkpoint now (they also run in the background); returns its info."""
        return _obj(self._native.checkpoint())

    def sync(self) -> None:
        """Makes everything acknowledged durable (only needed under sync != "always")."""
        self._native.sync()

    def refresh(self) -> Dict[str, Any]:
        """Catches up with what other processes committed since this one last looked
        (reads do not look by themselves); returns ``records``, ``last_lsn``,
        ``reloaded``."""
        return _obj(self._native.refresh())

    def recovery_report(self) -> Dict[str, Any]:
        """What opening the store found and did (torn tail cut, checkpoint used,
        records replayed, ...)."""
        return _obj(self._native.recovery_report())

    def journal_stats(self) -> Optional[Dict[str, int]]:
        """Journal counters since open: ``records``, ``bytes``, ``syncs`` (fdatasyncs)
        and ``batches`` (group-commit rounds); None when read-only."""
        return self._native.journal_stats()

    @property
    def path(self) -> str:
        """The store directory."""
        return os.fspath(self._native.path)

    @property
    def read_only(self) -> bool:
        """True when opened read-only."""
        return self._native.read_only

    @property
    def closed(self) -> bool:
        """True once closed."""
        return self._native.closed

    @property
    def last_lsn(self) -> int:
        """The log sequence number of the last commit applied (0: empty store)."""
        return self._native.last_lsn

    def close(self) -> None:
        """Stops background work and makes everything acknowledged durable. Calling it
        again does nothing; any other call afterwards raises ClosedError."""
        self._native.close()

    def __enter__(self):  # type: ignore[no-untyped-def]
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else ("read-only" if self.read_only else "open")
        return f"{type(self).__name__}({self.path!r}, {state})"


class KvStore(_Base[bytes, bytes]):
    """A durable, ordered map of ``bytes`` keys to ``bytes`` values.

    ``KvStore(path, *, sync="always", create=True, lock_timeout=None, ...)``

    - ``sync``: ``"always"`` (default: a write is durable when it returns),
      ``"interval"`` (acknowledged once written to the OS, fdatasynced every
      ``sync_interval`` seconds), ``"never"`` (only on :meth:`sync`/close), or
      ``"buffered"`` (bulk loads: a process crash loses the in-process buffer).
    - ``create``: create a missing store (default True); False raises NotAStoreError.
    - ``lock_timeout``: seconds a commit waits for another process's writer lock
      (default 10) before LockedError.
    - ``exclusive``: hold the writer lock until close (other writers are refused).
    - ``checkpoint_after_bytes``: journal bytes before a background checkpoint
      (None: only on :meth:`checkpoint`).
    - ``salvage``: on mid-log corruption keep the valid prefix and quarantine the
      rest instead of raising CorruptionError.
    - ``read_only``: open without writing anything (beside any writer).

    Mapping protocol: ``s[k]`` (KeyError when absent), ``s[k] = v``, ``del s[k]``,
    ``k in s``, ``len(s)``, iteration over keys in order.
    """

    def _key(self, key: bytes) -> bytes:
        if not isinstance(key, (bytes, bytearray, memoryview)):
            raise TypeError(f"KvStore keys are bytes, not {type(key).__name__}")
        return bytes(key)

    def _unkey(self, raw: bytes) -> bytes:
        return raw

    def _value(self, value: bytes) -> bytes:
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise TypeError(f"KvStore values are bytes, not {type(value).__name__}")
        return bytes(value)

    def _unvalue(self, raw: bytes) -> bytes:
        return raw

    # Fast paths: no conversion layer for bytes.
    def get(self, key: bytes, default: Any = None) -> Any:
        """The value of ``key``, or ``default`` (None) when it is absent."""
        raw = self._native.get(key) if type(key) is bytes else self._native.get(self._key(key))
        return default if raw is None else raw

    def put(self, key: bytes, value: bytes) -> None:
        """Sets ``key`` to ``value``, durably."""
        if type(key) is bytes and type(value) is bytes:
            self._native.put(key, value)
        else:
            self._native.put(self._key(key), self._value(value))

    def items(self, prefix: bytes = b"") -> List[Tuple[bytes, bytes]]:
        """Every ``(key, value)`` whose key starts with ``prefix``, in key order: a
        consistent copy, taken at once."""
        return self._native.scan_prefix(self._key(prefix))

    def keys(self, prefix: bytes = b"") -> List[bytes]:
        """Every key starting with ``prefix``, in key order."""
        return self._native.keys(self._key(prefix))

    @classmethod
    def open_read_only(cls, path: PathLike, **kwargs: Any) -> "KvStore":
        """Opens without writing anything; works beside any writer. Call
        :meth:`refresh` to see their new commits."""
        return cls(path, read_only=True, **kwargs)


class JsonStore(_Base[str, JsonValue]):
    """A durable map of ``str`` keys to JSON values (dict, list, str, int, float, bool,
    None), stored as UTF-8 JSON over a :class:`KvStore`. Same arguments and methods as
    KvStore. Values come back as new objects: mutating one changes nothing until it is
    assigned again.
    """

    def _key(self, key: str) -> bytes:
        if not isinstance(key, str):
            raise TypeError(f"JsonStore keys are str, not {type(key).__name__}")
        return key.encode("utf-8")

    def _unkey(self, raw: bytes) -> str:
        return raw.decode("utf-8")

    def _value(self, value: JsonValue) -> bytes:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode(
            "utf-8"
        )

    def _unvalue(self, raw: bytes) -> JsonValue:
        return json.loads(raw)

    def items(self, prefix: str = "") -> List[Tuple[str, JsonValue]]:
        """Every ``(key, value)`` whose key starts with ``prefix``, in key order: a
        consistent copy, taken at once."""
        return super().items(prefix)

    def keys(self, prefix: str = "") -> List[str]:
        """Every key starting with ``prefix``, in key order."""
        return super().keys(prefix)

    def cas(self, key: str, expected: JsonValue, new: JsonValue) -> bool:
        """Compare-and-set on JSON values: when ``key`` holds a value equal to
        ``expected`` as JSON (``{"a": 1, "b": 2}`` equals ``{"b": 2, "a": 1}``; ``1``
        does not equal ``1.0`` or ``true``), or is absent and ``expected`` is None, sets
        it to ``new`` (None: deletes it) and returns True; otherwise changes nothing and
        returns False. Atomic against every writer, in this process or another.
        (A stored JSON ``null`` cannot be expected: None means absent.)"""
        k = self._key(key)
        new_raw = None if new is None else self._value(new)
        want = None if expected is None else _canon(expected)
        native = self._native
        # The byte-level compare-and-set is atomic; the loop finds the bytes to expect.
        # Each failed attempt has caught the store up with every other writer, so the
        # value read after it is current: the loop ends when it is equal (and the swap
        # lands) or it is not (False).
        candidate = native.get(k)
        for _ in range(1000):
            if (candidate is None and want is None) or (
                candidate is not None and want is not None and _canon(json.loads(candidate)) == want
            ):
                if native.cas(k, candidate, new_raw):
                    return True
            else:
                # The value read may be stale (another process): ask the store, with the
                # canonical bytes, which also catches it up.
                guess = None if want is None else want.encode("utf-8")
                if guess != candidate and native.cas(k, guess, new_raw):
                    return True
                fresh = native.get(k)
                if fresh == candidate:
                    return False  # current, and not equal
                candidate = fresh
                continue
            candidate = native.get(k)
        raise Error(f"compare-and-set of {key!r} kept racing with other writers; retry")

    def to_dict(self) -> Dict[str, JsonValue]:
        """The whole state as a dict (a consistent copy)."""
        return dict(self.items())

    @classmethod
    def open_read_only(cls, path: PathLike, **kwargs: Any) -> "JsonStore":
        """Opens without writing anything; works beside any writer."""
        return cls(path, read_only=True, **kwargs)


class Batch(Generic[K, V]):
    """Operations collected in memory and committed as one atomic, durable group when
    the ``with`` block ends without an exception (or on :meth:`commit`). Nothing is
    written before that; if the block raises, nothing is written at all.

    Reads through the batch (``b.get``, ``b[k]``) see the batch's own pending
    operations over the store's state.
    """

    def __init__(self, store: _Base[K, V]) -> None:
        self._store = store
        self._ops: List[Tuple[bytes, Optional[bytes]]] = []
        self._pending: Dict[bytes, Optional[bytes]] = {}
        self._done = False

    def put(self, key: K, value: V) -> None:
        """Adds a put to the batch."""
        self._check()
        k, v = self._store._key(key), self._store._value(value)
        self._ops.append((k, v))
        self._pending[k] = v

    __setitem__ = put

    def delete(self, key: K) -> None:
        """Adds a delete to the batch (a no-op if the key is absent at commit time)."""
        self._check()
        k = self._store._key(key)
        self._ops.append((k, None))
        self._pending[k] = None

    __delitem__ = delete

    def get(self, key: K, default: Any = None) -> Any:
        """The value ``key`` will have after this batch (as far as it is known now)."""
        k = self._store._key(key)
        if k in self._pending:
            raw = self._pending[k]
        else:
            raw = self._store._native.get(k)
        return default if raw is None else self._store._unvalue(raw)

    def __getitem__(self, key: K) -> V:
        value: V = self.get(key, _MISSING)
        if value is _MISSING:
            raise KeyError(key)
        return value

    def __len__(self) -> int:
        return len(self._ops)

    def commit(self) -> int:
        """Commits the batch now (once); returns the LSN of its first record (0 for an
        empty batch, which writes nothing)."""
        self._check()
        self._done = True
        ops, self._ops = self._ops, []
        self._pending = {}
        return self._store._native.apply_batch(ops)

    def discard(self) -> None:
        """Drops the batch's operations: nothing is committed."""
        self._done = True
        self._ops = []
        self._pending = {}

    def _check(self) -> None:
        if self._done:
            raise ValueError("this batch was already committed or discarded")

    def __enter__(self) -> "Batch[K, V]":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self._done:
            return
        if exc_type is None:
            self.commit()
        else:
            self.discard()


def verify(path: PathLike, *, _sim: Any = None) -> Dict[str, Any]:
    """Checks every file of the store in ``path`` without changing anything. Returns
    ``verdict`` (``"clean"``, ``"torn_tail"``, ``"needs_repair"``, ...), ``files``,
    ``problems``, ``recovery`` and ``schema``. Damage is reported in the verdict; it
    raises only when ``path`` is not a store or I/O fails."""
    return _obj(_walstate.verify(os.fspath(path), sim=_sim))


def open_read_only(path: PathLike, *, json: bool = False, **kwargs: Any) -> Union[KvStore, JsonStore]:
    """Opens the store in ``path`` read-only (a :class:`JsonStore` with ``json=True``).
    Nothing is written; works beside any writer; :meth:`~KvStore.refresh` catches up."""
    cls = JsonStore if json else KvStore
    return cls(path, read_only=True, **kwargs)


del sys
