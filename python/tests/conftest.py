"""Shared helpers for walstate's Python tests."""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Dict, Iterator, List

import pytest


def run_python(code: str, *args: str, timeout: float = 60, user: int | None = None,
               check: bool = True) -> subprocess.CompletedProcess:
    """Runs `code` in a new Python process (this interpreter, so the same walstate)."""
    cmd: List[str] = [sys.executable, "-c", textwrap.dedent(code), *args]
    if user is not None:
        cmd = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *cmd]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(
            f"child exited {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )
    return result


def tree_digest(root: Path, ignore: tuple = ()) -> Dict[str, str]:
    """Every file under `root` (relative path) -> sha256 of its bytes, except names in
    `ignore`."""
    out: Dict[str, str] = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            if name in ignore:
                continue
            p = Path(dirpath) / name
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@contextlib.contextmanager
def mounted_tmpfs(base: Path, size: str) -> Iterator[Path]:
    """A fresh tmpfs of `size` mounted under `base`, unmounted afterwards; skips the
    test when this process cannot mount (not root, no CAP_SYS_ADMIN, a sandbox)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = base / f"tmpfs-{uuid.uuid4().hex[:8]}"
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)],
                         capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.strip()}")
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", str(mnt)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def remount(mnt: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(mnt)], check=True,
                   capture_output=True)


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "store"
