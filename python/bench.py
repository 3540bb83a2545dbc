"""Durable saves per second from Python: walstate against the usual alternatives.

    python python/bench.py [DIR] [--seconds S]

For a state of 100 and of 10,000 keys (values of ~100 bytes), each save changes one
key and is durable when it returns:

- walstate: ``KvStore.put`` under ``sync="always"`` (one record, one fdatasync);
- JSON file: the whole state rewritten per save: temp file, fsync, ``os.replace``,
  fsync of the directory (the crash-safe way to save a file);
- sqlite3: ``INSERT OR REPLACE`` + commit, WAL mode, ``synchronous=FULL``.

Then the per-call cost of an unsynced read (``store.get``) against a dict and sqlite3.
DIR (default: a new directory under the current one) should be on the disk you care
about: /tmp may be a tmpfs, where fsync is free. Not part of the tests.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sqlite3
import tempfile
import time
import sys
import timeit
from pathlib import Path

# This file sits beside the source package python/walstate, which has no compiled
# extension: import the installed walstate instead.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import walstate  # noqa: E402

VALUE = b"v" * 100


def rate(save, seconds: float) -> float:
    """Calls save(i) for about `seconds`; returns calls per second."""
    n = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        save(n)
        n += 1
        if n % 8 == 0 and time.perf_counter() >= deadline:
            break
    return n / (time.perf_counter() - start)


def bench_walstate(dir_: Path, keys: int, seconds: float) -> float:
    store = walstate.KvStore(dir_ / "walstate")
    with store.batch() as b:
        for i in range(keys):
            b.put(b"key/%06d" % i, VALUE)
    names = [b"key/%06d" % i for i in range(keys)]
    r = rate(lambda n: store.put(names[n % keys], VALUE), seconds)
    store.close()
    return r


def bench_json_file(dir_: Path, keys: int, seconds: float) -> float:
    state = {"key/%06d" % i: VALUE.decode() for i in range(keys)}
    path = dir_ / "state.json"
    dir_fd = os.open(dir_, os.O_RDONLY)
    names = list(state)

    def save(n: int) -> None:
        state[names[n % keys]] = VALUE.decode()
        tmp = dir_ / "state.json.tmp"
        with open(tmp, "w") as f:
            json.dump(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        os.fsync(dir_fd)

    try:
        return rate(save, seconds)
    finally:
        os.close(dir_fd)


def bench_sqlite(dir_: Path, keys: int, seconds: float) -> float:
    db = sqlite3.connect(dir_ / "state.db", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE kv (k BLOB PRIMARY KEY, v BLOB) WITHOUT ROWID")
    db.execute("BEGIN")
    db.executemany("INSERT INTO kv VALUES (?, ?)", ((b"key/%06d" % i, VALUE) for i in range(keys)))
    db.execute("COMMIT")
    names = [b"key/%06d" % i for i in range(keys)]

    def save(n: int) -> None:
        db.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (names[n % keys], VALUE))

    try:
        return rate(save, seconds)
    finally:
        db.close()


def read_costs(dir_: Path) -> dict:
    keys = 10_000
    store = walstate.KvStore(dir_ / "walstate-read")
    with store.batch() as b:
        for i in range(keys):
            b.put(b"key/%06d" % i, VALUE)
    d = {b"key/%06d" % i: VALUE for i in range(keys)}
    db = sqlite3.connect(dir_ / "read.db")
    db.execute("CREATE TABLE kv (k BLOB PRIMARY KEY, v BLOB) WITHOUT ROWID")
    db.executemany("INSERT INTO kv VALUES (?, ?)", d.items())
    db.commit()
    k = b"key/%06d" % 1234
    native = store._native
    number = 200_000
    out = {
        "walstate KvStore.get": timeit.timeit(lambda: store.get(k), number=number) / number,
        "walstate store[k]": timeit.timeit(lambda: store[k], number=number) / number,
        "native get (no wrapper)": timeit.timeit(lambda: native.get(k), number=number) / number,
        "dict.get": timeit.timeit(lambda: d.get(k), number=number) / number,
        "sqlite3 SELECT": timeit.timeit(
            lambda: db.execute("SELECT v FROM kv WHERE k = ?", (k,)).fetchone(),
            number=number // 10,
        )
        / (number // 10),
    }
    store.close()
    db.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", nargs="?", type=Path, help="where to write (default: ./)")
    parser.add_argument("--seconds", type=float, default=2.0, help="per measurement")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="walstate-bench-", dir=args.dir or Path.cwd()))
    random.seed(0)
    try:
        print(f"durable saves per second ({args.seconds:g} s each, in {base})\n")
        print("| state | walstate put | JSON file rewrite | sqlite3 WAL FULL |")
        print("|---|---|---|---|")
        for keys in (100, 10_000):
            row = []
            for fn in (bench_walstate, bench_json_file, bench_sqlite):
                d = base / f"{fn.__name__}-{keys}"
                d.mkdir()
                row.append(fn(d, keys, args.seconds))
            print(f"| {keys:,} keys | " + " | ".join(f"{r:,.0f}/s" for r in row) + " |")
        print("\nunsynced read, per call (10,000 keys)\n")
        print("| read | time |")
        print("|---|---|")
        for name, secs in read_costs(base).items():
            print(f"| {name} | {secs * 1e9:,.0f} ns |")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
