"""scripts/run.py's wait for the events worker: honcho stops waiting when a line's shell
dies, so make run waits for the worker's own pid (its pidfile) before stopping the
servers — until it has exited, or STOP_TIMEOUT, then SIGKILL."""

from __future__ import annotations

import subprocess
import sys
import time

from scripts import run


def _orphan(seconds: float) -> int:
    """A process that is not the caller's child (as the events worker is not run.py's)."""
    out = subprocess.run(
        ["sh", "-c", f"{sys.executable} -c 'import time; time.sleep({seconds})' >/dev/null 2>&1 & echo $!"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return int(out.strip())


def _alive(pid: int) -> bool:
    try:
        state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_it_waits_for_a_worker_finishing_its_task():
    pid = _orphan(1.0)
    started = time.monotonic()
    run._wait_gone(pid, timeout=10)
    assert 0.5 < time.monotonic() - started < 5
    assert not _alive(pid)


def test_it_kills_a_worker_past_the_timeout():
    pid = _orphan(60)
    started = time.monotonic()
    run._wait_gone(pid, timeout=0.5)
    assert time.monotonic() - started < 3
    time.sleep(0.3)
    assert not _alive(pid)


def test_no_pidfile_no_wait(tmp_path):
    assert run._pid(tmp_path / "events.pid") is None
    run._wait_gone(None, timeout=10)  # returns at once
