"""`make run`: the database and broker, then web, the two workers, beat and the sandbox provider.

1. PostgreSQL and Redis: named by DATABASE_URL / CELERY_BROKER_URL, else the ones
   listening on 127.0.0.1, else servers of its own with their data under var/
   (scripts/engines.py). It prints which.
2. Migrations (Concord's and the provider's own database), static files, demo data.
3. The Procfile's processes under honcho; once /readyz and the provider answer, the
   URLs, demo logins, an API token and how long start-up took.

Ctrl-C (or SIGTERM) stops the processes, then the servers this run started; the next
run reuses their data. The saga worker (`worker`, prefork) stops first, alone and warm
(its running tasks finish, up to STOP_TIMEOUT): honcho would signal its whole process
group, pool children included, which kills a task mid-way. When it has exited honcho
stops the others, the events worker (`events`) among them: it runs the solo pool (no
pool child), so honcho's SIGTERM is its warm shutdown too. Every Procfile line `exec`s
its program, so the process honcho started, signals and waits for is the program itself
(not a `sh -c` that dies first and leaves the program behind): honcho returns once every
program has exited, giving them STOP_TIMEOUT (its KILL_WAIT, 5 s by default, set here)
before it SIGKILLs what is left. The two workers cannot be signalled at once: whichever
exits first makes honcho signal the other's group, and that must not be the prefork
worker's.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.engines import EngineError, engines_up  # noqa: E402

BIN = ROOT / ".venv" / "bin"
WORKER_PID_FILE = ROOT / "var" / "run" / "worker.pid"  # the Procfile's worker --pidfile
EVENTS_PID_FILE = ROOT / "var" / "run" / "events.pid"  # the Procfile's events --pidfile
METRICS_DIR = ROOT / "var" / "prometheus"  # emptied at every start: samples of dead processes go
READY_TIMEOUT = 120  # seconds for the processes to answer once started
STOP_TIMEOUT = 30  # seconds the saga worker gets, then the others (honcho's KILL_WAIT), before SIGKILL
# `honcho start` with its KILL_WAIT (how long it waits, once one process exited and it
# signalled the rest, before it SIGKILLs their groups) at STOP_TIMEOUT instead of 5 s:
# the events worker's running task (a bulk chunk may take BACKOFFICE_BULK_CHUNK_SECONDS,
# 10 s) finishes. honcho 2.0 has no option for it; tests/engines/test_run_stop.py checks
# that the name still exists and is honoured.
HONCHO = (
    "import sys; import honcho.manager as m; m.KILL_WAIT = float(sys.argv.pop(1)); "
    "from honcho.command import main; main()"
)


def _say(*lines: str) -> None:
    print(*lines, sep="\n", flush=True)


def _defaults(environ: dict[str, str]) -> dict[str, str]:
    env = dict(environ)
    env.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    env.setdefault("WEB_PORT", "8000")
    env.setdefault("PSP_PORT", "8010")
    env.setdefault("PSP_BASE_URL", f"http://127.0.0.1:{env['PSP_PORT']}")
    env.setdefault("PSP_API_KEY", "sk_test_concord")
    env.setdefault("PSP_WEBHOOK_URL", f"http://127.0.0.1:{env['WEB_PORT']}/api/v1/webhooks/psp/")
    env.setdefault("PSP_WEBHOOK_SECRET", "whsec_concord_dev")
    env["PYTHONUNBUFFERED"] = "1"
    # Readable log lines here (production defaults to JSON); the metric samples of every
    # process of this machine in one directory, merged by /metrics (docs/operations.md).
    env.setdefault("LOG_FORMAT", "console")
    env["PROMETHEUS_MULTIPROC_DIR"] = str(METRICS_DIR)
    return env


def _manage(env: dict[str, str], *args: str, module: str | None = None) -> str:
    cmd = [str(BIN / "python"), *(["-m", module] if module else ["manage.py"]), *args]
    done = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[1:])} failed (exit {done.returncode}):\n{done.stdout}")
    return done.stdout


def _wait_ready(env: dict[str, str], honcho: subprocess.Popen) -> bool:
    web = f"http://127.0.0.1:{env['WEB_PORT']}/readyz"
    psp = f"{env['PSP_BASE_URL']}/healthz"
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline and honcho.poll() is None:
        try:
            if httpx.get(web, timeout=2).status_code == 200 and httpx.get(psp, timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    return False


def _banner(env: dict[str, str], seed_output: str, timings: dict[str, float]) -> str:
    web = f"http://127.0.0.1:{env['WEB_PORT']}"
    took = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in timings.items())
    return f"""
  Concord is ready (start-up {sum(timings.values()):.1f} s: {took}).
    Back office  {web}/backoffice/
    Admin        {web}/admin/
    API docs     {web}/api/v1/docs/
    Health       {web}/healthz  {web}/readyz
    Metrics      {web}/metrics   (chaos and invariants: .venv/bin/python manage.py simulate)
    Provider     {env["PSP_BASE_URL"]}  (sandbox, key {env["PSP_API_KEY"]})

{seed_output.rstrip()}

  Ctrl-C stops everything.
"""


def _pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _exited(pid: int, timeout: float) -> bool:
    """Whether `pid` (not our child: polled) exits within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    stat = Path(f"/proc/{pid}/stat")
    while True:
        try:
            os.kill(pid, 0)
            if stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return True  # exited, not reaped yet (by its parent, honcho's runner)
        except (OSError, IndexError):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)


def honcho_command(procfile: str = "Procfile") -> list[str]:
    """`honcho -f PROCFILE start`, its KILL_WAIT at STOP_TIMEOUT."""
    return [str(BIN / "python"), "-c", HONCHO, str(STOP_TIMEOUT), "-f", procfile, "start"]


def _stop(honcho: subprocess.Popen | None) -> None:
    """SIGTERM to the saga worker alone (a warm shutdown); when it exits honcho stops the
    other processes and waits for them (STOP_TIMEOUT each way, then SIGKILL). If the
    worker is not there, or takes longer than STOP_TIMEOUT, honcho itself is told to stop
    everything."""
    if honcho is None or honcho.poll() is not None:
        return
    worker = _pid(WORKER_PID_FILE)
    try:
        if worker is None:
            raise ProcessLookupError
        os.kill(worker, signal.SIGTERM)
    except OSError:
        honcho.send_signal(signal.SIGTERM)
    else:
        if not _exited(worker, STOP_TIMEOUT):
            honcho.send_signal(signal.SIGTERM)
    try:
        honcho.wait(STOP_TIMEOUT + 5)  # the others' stop: honcho SIGKILLs them after STOP_TIMEOUT
    except subprocess.TimeoutExpired:
        honcho.kill()
        honcho.wait()


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    signal.signal(signal.SIGTERM, _terminate)
    env = _defaults(dict(os.environ))
    shutil.rmtree(METRICS_DIR, ignore_errors=True)
    METRICS_DIR.mkdir(parents=True)
    timings: dict[str, float] = {}
    honcho: subprocess.Popen | None = None
    engines = None
    mark = time.monotonic()
    try:
        try:
            engines = engines_up(ROOT, env)
        except EngineError as exc:
            _say(f"make run: {exc}")
            return 1
        env.update(engines.env)
        _say(*engines.lines)
        timings["database and broker"] = time.monotonic() - mark

        mark = time.monotonic()
        _manage(env, "migrate", "--noinput", "-v", "0")
        _manage(env, "migrate", "--noinput", "-v", "0", module="sandbox_psp")
        _manage(env, "collectstatic", "--noinput", "-v", "0")
        seed_output = _manage(env, "seed_demo")
        timings["migrations and demo data"] = time.monotonic() - mark

        mark = time.monotonic()
        WORKER_PID_FILE.parent.mkdir(parents=True, exist_ok=True)
        for pidfile in (WORKER_PID_FILE, EVENTS_PID_FILE):
            pidfile.unlink(missing_ok=True)  # left by a killed run: never signal a stale pid
        # A session of its own: the terminal's Ctrl-C reaches this script, which stops
        # the processes in order (_stop), not honcho directly.
        honcho = subprocess.Popen(honcho_command(), cwd=ROOT, env=env, start_new_session=True)
        if _wait_ready(env, honcho):
            timings["processes"] = time.monotonic() - mark
            _say(_banner(env, seed_output, timings))
        elif honcho.poll() is None:
            _say(f"make run: not ready after {READY_TIMEOUT} s; see the processes' output above.")
        return honcho.wait()
    except KeyboardInterrupt:
        return 0  # Ctrl-C is how make run is meant to stop
    finally:
        # A second Ctrl-C must not cut the clean-up short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        _stop(honcho)
        if engines is not None and engines.started:
            names = " and ".join(server.name for server in engines.started)
            _say(f"Stopping {names} (their data stays in var/)...")
            try:
                engines.down()
            except EngineError as exc:
                _say(f"make run: {exc}")


if __name__ == "__main__":
    sys.exit(main())
