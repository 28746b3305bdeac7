"""The relay under failure, with real worker processes, PostgreSQL and Redis: a relay
killed mid-batch, a consumer that raises, a broker restarted. Every event reaches the
consumer, and none is applied twice (the consumer's table has no unique key)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time

import pytest
from django.db import transaction

from outbox.dto import NewEvent
from outbox.services import events_record

from . import worker_consumers as wc

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

WORKER_ENV = {
    "OUTBOX_TEST_CONSUMER": "1",
    "OUTBOX_POLL_INTERVAL": "0.5",
    "OUTBOX_RETRY_MAX_DELAY": "0.5",
    "RECONCILE_INTERVAL": "3600",
}
IMPORTS = ["tests.outbox.worker_consumers"]


@pytest.fixture
def applied_table():
    wc.create_table()
    yield
    wc.drop_table()


def record_many(n: int, *, start: int = 0, aggregates: int = 5, **payload) -> list[str]:
    with transaction.atomic():
        return events_record(
            NewEvent("thing.happened", "thing", (start + i) % aggregates, {"n": start + i, **payload})
            for i in range(n)
        )


def wait_until(predicate, what: str, timeout: float = 60.0, on_timeout=lambda: "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}\n{on_timeout()[-3000:]}")


def assert_each_applied_once_in_order(ids: list[str]) -> None:
    rows = wc.applied()
    assert sorted(r[0] for r in rows) == sorted(ids), "every event applied exactly once"
    sequences = [r[1] for r in rows]
    assert sequences == sorted(sequences), "applied in commit (sequence) order"


def test_a_relay_killed_mid_batch_loses_nothing_and_applies_nothing_twice(
    applied_table, celery_worker_factory
):
    slow = celery_worker_factory("slow", imports=IMPORTS, env={**WORKER_ENV, "OUTBOX_TEST_SLOW_MS": "50"})
    ids = record_many(60)
    # The poke on commit started a relay; kill it while its batch is half handled.
    wait_until(lambda: sum(wc.calls().values()) >= 15, "the relay to be mid-batch", on_timeout=slow.log)
    slow.kill()
    assert wc.applied() == []  # the batch's effects rolled back with the relay's transaction
    fresh = celery_worker_factory("fresh", imports=IMPORTS, beat=True, env=WORKER_ENV)
    wait_until(lambda: len(wc.applied()) >= 60, "all 60 events applied", on_timeout=fresh.log)
    time.sleep(1.5)  # a few more polls: still nothing twice
    assert_each_applied_once_in_order(ids)
    assert sum(wc.calls().values()) > 60  # the killed batch's events were handed over again


def test_a_consumer_that_raises_is_retried_in_order_and_applies_each_event_once(
    applied_table, celery_worker_factory
):
    worker = celery_worker_factory(imports=IMPORTS, beat=True, env=WORKER_ENV)
    ids = record_many(10)
    ids += record_many(1, start=10, boom=3)  # raises three times, then works
    ids += record_many(10, start=11)
    wait_until(lambda: len(wc.applied()) >= 21, "all 21 events applied", on_timeout=worker.log)
    assert_each_applied_once_in_order(ids)
    assert wc.calls()[ids[10]] == 4


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class OwnRedis:
    """A Redis of this test's own (never the shared one), restartable on its port."""

    def __init__(self, tmp_path) -> None:
        self.port = _free_port()
        self.dir = tmp_path
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [shutil.which("redis-server") or "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(self.dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        wait_until(self._up, "redis to start", timeout=10)

    def _up(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)


@pytest.fixture
def own_redis(tmp_path):
    server = OwnRedis(tmp_path)
    server.start()
    yield server
    server.stop()


def test_a_broker_restart_loses_nothing(applied_table, celery_worker_factory, own_redis):
    env = {**WORKER_ENV, "CELERY_BROKER_URL": own_redis.url, "OUTBOX_TEST_REDIS_URL": own_redis.url}
    # The handler counts calls in the test's own Redis too: point the helper there.
    os.environ["OUTBOX_TEST_REDIS_URL"] = own_redis.url
    wc.client.cache_clear()
    try:
        worker = celery_worker_factory(imports=IMPORTS, beat=True, env=env)
        first = record_many(20)
        wait_until(lambda: len(wc.applied()) >= 20, "the first 20 applied", on_timeout=worker.log)
        own_redis.stop()  # the broker goes away (its queued messages with it)
        second = record_many(20, start=20)
        time.sleep(2)
        own_redis.start()  # an empty broker comes back on the same port
        wait_until(lambda: len(wc.applied()) >= 40, "all 40 applied after the restart", on_timeout=worker.log)
        assert_each_applied_once_in_order(first + second)
    finally:
        os.environ.pop("OUTBOX_TEST_REDIS_URL", None)
        wc.client.cache_clear()
