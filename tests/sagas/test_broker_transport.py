"""The broker transport (config/broker.py): kombu's Redis transport, keeping one
publishing client per channel instead of building one per message."""

from __future__ import annotations

import json

import redis
from django.conf import settings

from config import broker
from config.celery_app import app

QUEUE = "concord-test-transport"


def test_the_redis_broker_uses_the_transport_that_keeps_its_client():
    assert settings.CELERY_BROKER_URL.startswith("redis://")
    with app.connection_for_write() as connection:
        assert isinstance(connection.transport, broker.Transport)


def test_publishes_share_one_client_and_every_message_reaches_the_queue():
    server = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    server.delete(QUEUE)
    try:
        with app.producer_or_acquire() as producer:
            channel = producer.channel
            assert isinstance(channel, broker.Channel)
            for n in range(3):
                app.send_task("tests.transport_probe", args=(n,), queue=QUEUE, producer=producer)
            kept = channel._create_client()
            assert channel._create_client() is kept
            assert kept.connection_pool is channel.pool

        bodies = [json.loads(raw) for raw in server.lrange(QUEUE, 0, -1)]
        assert sorted(body["headers"]["argsrepr"] for body in bodies) == ["(0,)", "(1,)", "(2,)"]
    finally:
        server.delete(QUEUE)


def test_a_channel_whose_pool_was_replaced_builds_a_client_of_the_new_pool():
    with app.connection_for_write() as connection:
        channel = connection.channel()
        try:
            old = channel._create_client()
            channel._pool = None  # what kombu does when it closes or reconnects a channel's pool
            new = channel._create_client()
            assert new is not old and new.connection_pool is channel.pool
            assert new.ping()
        finally:
            channel.close()
