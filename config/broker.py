"""The Redis transport Celery uses (CELERY_BROKER_TRANSPORT), with one fix.

kombu's Redis channel builds a new `redis.Redis` object for every publish
(`Channel.conn_or_acquire()` -> `_create_client()`): the TCP connection comes from
the channel's pool, but each new client object rebuilds its table of response
callbacks, ~170 dictionary writes, on the request thread of every accepted order
(and on every poke a worker sends). Measured: 0.5 ms of Python per publish
(bench/checkout_latency.py, docs/benchmarks.md "Place -> confirmed latency").

The channel here keeps one synchronous client for as long as its pool lives. A
`redis.Redis` is safe to share between threads: each command takes a connection
from the pool and gives it back. Nothing else changes: same URL, same queues,
same messages, same acknowledgement protocol.
"""

from __future__ import annotations

from kombu.transport import redis as kombu_redis


class Channel(kombu_redis.Channel):
    _kept_client = None

    def _create_client(self, asynchronous: bool = False):
        if asynchronous:
            return super()._create_client(asynchronous=True)
        client = self._kept_client
        # A channel that lost its pool (closed, or reconnected after an error) gets
        # a client of the new pool.
        if client is None or client.connection_pool is not self.pool:
            client = self._kept_client = super()._create_client()
        return client


class Transport(kombu_redis.Transport):
    Channel = Channel
