"""A state tracker in a real child process, SIGKILLed mid-run: every step it
acknowledged (printed after the call returned) is there after reopening."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import walstate

TRACKER = textwrap.dedent(
    """
    import json, sys, threading, walstate
    path, threads = sys.argv[1], int(sys.argv[2])
    store = walstate.JsonStore(path)
    start = store.get("progress", {"step": -1})["step"] + 1 if threads == 1 else 0
    print("ready", flush=True)
    lock = threading.Lock()

    def run(worker):
        step = start
        while True:
            if threads == 1:
                # One step: the job's record and the progress marker, one atomic batch.
                with store.batch() as b:
                    b[f"job/{step:08d}"] = {"step": step, "payload": "p" * 64}
                    b["progress"] = {"step": step}
            else:
                store[f"w{worker}/{step:08d}"] = {"step": step}
            with lock:
                print(f"ack {worker} {step}", flush=True)  # only after the commit returned
            step += 1

    for w in range(threads):
        threading.Thread(target=run, args=(w,), daemon=True).start()
    threading.Event().wait()
    """
)


def run_and_kill(path, threads, after_acks):
    """Starts the tracker, SIGKILLs it once it printed `after_acks` acks; returns
    {worker: [acknowledged steps]}."""
    child = subprocess.Popen([sys.executable, "-c", TRACKER, str(path), str(threads)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    acks = {}
    count = 0
    deadline = time.monotonic() + 60
    killer = threading.Timer(60, child.kill)
    killer.start()
    try:
        assert child.stdout.readline().strip() == "ready", child.stderr.read()
        for line in child.stdout:
            _, worker, step = line.split()
            acks.setdefault(int(worker), []).append(int(step))
            count += 1
            if count >= after_acks or time.monotonic() > deadline:
                break
        child.send_signal(signal.SIGKILL)
        # Acks already in the pipe were printed before the kill: they count too.
        rest, err = child.communicate(timeout=30)
        for line in rest.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[0] == "ack":
                acks.setdefault(int(parts[1]), []).append(int(parts[2]))
    finally:
        killer.cancel()
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL, err
    assert count >= after_acks, f"only {count} acks before the deadline; stderr: {err}"
    return acks


def test_sigkilled_tracker_keeps_every_acknowledged_step(store_path):
    total = 0
    for round_, after in enumerate((150, 60, 300)):
        acks = run_and_kill(store_path, 1, after)[0]
        total = acks[-1] + 1
        with walstate.JsonStore(store_path) as store:
            progress = store["progress"]["step"]
            # Every acknowledged step is there, with its job record (same batch).
            assert progress >= acks[-1]
            # At most the one step in flight at the kill got in without its ack.
            assert progress <= acks[-1] + 1
            jobs = store.keys("job/")
            assert jobs == [f"job/{i:08d}" for i in range(progress + 1)], round_
            for step in acks[-20:]:
                assert store[f"job/{step:08d}"]["step"] == step
            report = store.recovery_report()
            assert report["records_replayed"] >= 1
    assert total >= 150 + 60 + 300


def test_sigkilled_tracker_with_threads_keeps_every_acknowledged_step(store_path):
    acks = run_and_kill(store_path, 4, 400)
    assert len(acks) == 4
    with walstate.JsonStore(store_path) as store:
        for worker, steps in acks.items():
            for step in steps:
                assert store[f"w{worker}/{step:08d}"] == {"step": step}
        assert walstate.verify(store_path)["verdict"] == "clean"
