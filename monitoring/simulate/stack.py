"""Processes `simulate --spawn` starts itself, and may therefore break on purpose.

Its own Redis (a `redis-server` on a free port, no persistence: a restart loses
every queued message, which is the point), N web servers (gunicorn, as the
Procfile's web line), M Celery workers with distinct host names (as on M hosts) and
one beat — all on the database and the payment provider this process is configured
with. Every process runs in a session of its own, so a kill takes its children
with it, and nothing this module did not start is ever signalled.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import httpx
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url() -> str:
    """DATABASE_URL of the database this process uses (in tests: pytest-django's
    test_<name> copy), so the processes started here see the same data."""
    db = settings.DATABASES["default"]
    auth = quote(db.get("USER") or "postgres", safe="")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"], safe="")
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    return f"postgres://{auth}@{host}:{port}/{db['NAME']}"


class ManagedProcess:
    def __init__(
        self,
        name: str,
        args: list[str],
        env: dict[str, str],
        log_path: Path,
        ready: Callable[[ManagedProcess], bool],
    ) -> None:
        self.name = name
        self.args = args
        self.env = env
        self.log_path = log_path
        self._ready = ready
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self._log_offset = 0

    def start(self, timeout: float = 60.0) -> None:
        self._log_offset = len(self.log())
        with self.log_path.open("ab") as log:
            # Our own fixed argument lists (binaries of this virtualenv, redis-server).
            self.proc = subprocess.Popen(  # noqa: S603
                self.args,
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.starts += 1
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive:
                raise RuntimeError(f"{self.name} exited at start:\n{self.log_tail()}")
            if self._ready(self):
                return
            time.sleep(0.1)
        raise TimeoutError(f"{self.name} not ready after {timeout:.0f}s:\n{self.log_tail()}")

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_since_start(self) -> str:
        return self.log()[self._log_offset :]

    def log_tail(self, size: int = 3000) -> str:
        return self.log()[-size:]

    def _signal(self, sig: int) -> None:
        if self.alive:
            try:
                os.killpg(self.proc.pid, sig)  # its own session: its children go too
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        """SIGKILL, no cleanup: unacknowledged messages stay, leases are left to expire."""
        self._signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(10)

    def stop(self, timeout: float = 10.0) -> None:
        self._signal(signal.SIGTERM)
        if self.proc is None:
            return
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()


class Stack:
    def __init__(
        self,
        *,
        workdir: Path,
        webs: int = 1,
        workers: int = 2,
        pool: str = "solo",
        concurrency: int = 1,
        env: dict[str, str] | None = None,
    ) -> None:
        self.workdir = workdir
        self.redis_port = free_port()
        self.broker_url = f"redis://127.0.0.1:{self.redis_port}/0"
        base_env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "config.settings.local"),
            "DATABASE_URL": database_url(),
            "CELERY_BROKER_URL": self.broker_url,
            "PSP_BASE_URL": settings.PSP_BASE_URL,
            "PSP_API_KEY": settings.PSP_API_KEY,
            "PSP_WEBHOOK_SECRET": settings.PSP_WEBHOOK_SECRET,
            # The simulated clients are many orders from few tokens: not what the
            # per-client throttle protects against.
            "API_THROTTLE_RATE": "1000000/min",
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        base_env.pop("CACHE_URL", None)  # the throttle counters go to this stack's Redis
        self.env = base_env
        self.redis = ManagedProcess(
            "redis",
            [
                "redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", str(workdir),
            ],
            base_env,
            workdir / "redis.log",
            lambda _: self._redis_ready(),
        )  # fmt: skip
        self.webs: list[ManagedProcess] = []
        self.web_urls: list[str] = []
        for i in range(webs):
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            self.web_urls.append(url)
            self.webs.append(
                ManagedProcess(
                    f"web-{i}",
                    [
                        str(BIN / "gunicorn"), "config.wsgi", "--bind", f"127.0.0.1:{port}",
                        "--workers", "2", "--threads", "4", "--graceful-timeout", "2", "--no-control-socket",
                    ],
                    base_env,
                    workdir / f"web-{i}.log",
                    _http_ready(url + "/healthz"),
                )
            )  # fmt: skip
        self.workers = [
            self._worker(f"sim-worker-{i}@sim-host-{i}", workdir / f"worker-{i}.log", pool, concurrency)
            for i in range(workers)
        ]
        self.beat = ManagedProcess(
            "beat",
            [
                str(BIN / "celery"),
                "-A",
                "config",
                "beat",
                "--loglevel",
                "INFO",
                "--schedule",
                str(workdir / "beat"),
            ],
            base_env,
            workdir / "beat.log",
            lambda process: "beat: Starting" in process.log_since_start(),
        )
        self.worker_kills = 0
        self.broker_restarts = 0

    def _worker(self, hostname: str, log_path: Path, pool: str, concurrency: int) -> ManagedProcess:
        return ManagedProcess(
            hostname,
            [
                str(BIN / "celery"), "-A", "config", "worker", "--loglevel", "INFO", "--hostname", hostname,
                "--pool", pool, "--concurrency", str(concurrency),
                "--without-gossip", "--without-mingle", "--without-heartbeat",
            ],
            self.env,
            log_path,
            lambda process: " ready." in process.log_since_start(),
        )  # fmt: skip

    def _redis_ready(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.redis_port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        self.redis.start(timeout=20)
        for web in self.webs:
            web.start()
        for worker in self.workers:
            worker.start()
        self.beat.start()

    def kill_worker(self, index: int) -> str:
        """SIGKILL one worker mid-whatever, then start a fresh one under the same host
        name (its runs come back when their leases expire and the sweeper pokes them)."""
        worker = self.workers[index % len(self.workers)]
        worker.kill()
        self.worker_kills += 1
        worker.start()
        return worker.name

    def restart_broker(self, down_seconds: float = 2.0) -> None:
        """Stop this stack's Redis (every queued message is lost) and start it again."""
        self.redis.kill()
        self.broker_restarts += 1
        time.sleep(down_seconds)
        self.redis.start(timeout=20)

    def ensure_running(self) -> None:
        """Before settling: anything that died (or was killed last) is running again."""
        if not self.redis.alive:
            self.redis.start(timeout=20)
        for worker in self.workers:
            if not worker.alive:
                worker.start()

    def stop(self) -> None:
        for process in [self.beat, *self.workers, *self.webs]:
            process.stop()
        self.redis.stop()

    def logs(self) -> dict[str, str]:
        return {p.name: p.log_tail() for p in [self.redis, *self.webs, *self.workers, self.beat]}


def _http_ready(url: str) -> Callable[[ManagedProcess], bool]:
    def ready(_: ManagedProcess) -> bool:
        try:
            return httpx.get(url, timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    return ready
