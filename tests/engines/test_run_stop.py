"""scripts/run.py's stop, and the Procfile's `exec`: honcho runs each line under `sh -c`
(dash, which does not exec the last command), so without `exec` the process honcho
starts, signals and waits for is a shell that dies first and leaves the program
behind. With it the program is honcho's direct child, and honcho (its KILL_WAIT set to
run.STOP_TIMEOUT) waits for it to finish its work before SIGKILL."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import honcho.manager

from scripts import run

ROOT = Path(__file__).resolve().parents[2]

# Writes its pid; on SIGTERM takes `seconds` to finish its work (more than honcho's own
# KILL_WAIT, 5 s), then writes "done" and exits.
PROGRAM = textwrap.dedent(
    """
    import os, signal, sys, time
    out = sys.argv[1]
    open(out + ".pid", "w").write(str(os.getpid()))
    def stop(*_):
        time.sleep(float(sys.argv[2]))
        open(out + ".done", "w").write("done")
        sys.exit(0)
    signal.signal(signal.SIGTERM, stop)
    while True:
        time.sleep(0.1)
    """
)


def _orphan(seconds: float) -> int:
    """A process that is not the caller's child (as the saga worker is not run.py's)."""
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
    assert run._exited(pid, timeout=10)
    assert 0.5 < time.monotonic() - started < 5
    assert not _alive(pid)


def test_it_gives_up_on_a_worker_past_the_timeout():
    pid = _orphan(60)
    started = time.monotonic()
    try:
        assert not run._exited(pid, timeout=0.5)
        assert time.monotonic() - started < 3
        assert _alive(pid)
    finally:
        subprocess.run(["kill", "-KILL", str(pid)], check=False)


def test_no_pidfile_no_pid(tmp_path):
    assert run._pid(tmp_path / "worker.pid") is None


def test_every_procfile_line_execs_its_program():
    lines = [line for line in (ROOT / "Procfile").read_text().splitlines() if line.strip()]
    commands = {name: command.strip() for name, _, command in (line.partition(":") for line in lines)}
    assert set(commands) == {"web", "worker", "events", "beat", "psp"}
    assert {name for name, command in commands.items() if not command.startswith("exec ")} == set()


def _honcho(tmp_path: Path, lines: dict[str, str]) -> tuple[str, float]:
    procfile = tmp_path / "Procfile"
    procfile.write_text("".join(f"{name}: {command}\n" for name, command in lines.items()))
    started = time.monotonic()
    done = subprocess.run(
        run.honcho_command(str(procfile)), cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    return done.stdout, time.monotonic() - started


def test_honcho_tracks_the_program_itself_and_waits_for_its_warm_stop(tmp_path):
    """`first` exits after a second: honcho SIGTERMs `slow`, whose stop takes 7 s (past
    honcho's own 5 s): with KILL_WAIT at STOP_TIMEOUT it finishes, and honcho returns only
    then. The pid honcho reports for each line is its program's, not a shell's: without
    `exec` (`shell`) it is not."""
    assert honcho.manager.KILL_WAIT == 5  # the default run.py overrides: still honcho's name for it
    (tmp_path / "program.py").write_text(PROGRAM)
    out, took = _honcho(
        tmp_path,
        {
            "first": f"exec {sys.executable} -c 'import time; time.sleep(1)'",
            "slow": f"exec {sys.executable} program.py slow 7",
            "shell": f"{sys.executable} program.py shell 0",
        },
    )
    reported = {name: int(pid) for name, pid in re.findall(r"(\w+)\.1 started \(pid=(\d+)\)", out)}
    assert reported["slow"] == int((tmp_path / "slow.pid").read_text())
    assert reported["shell"] != int((tmp_path / "shell.pid").read_text())  # honcho's is sh's
    assert (tmp_path / "slow.done").read_text() == "done", out  # not SIGKILLed mid-stop
    assert 7 < took < run.STOP_TIMEOUT, out
    assert "SIGKILL" not in out
