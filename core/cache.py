"""Django's Redis cache backend, with one redis-py client per connection pool.

Django's RedisCacheClient.get_client builds a new `redis.Redis` for every cache
call; its constructor fills a response-callback table of some 170 entries each
time. Measured in-process (bench/api_cpu.py under cProfile, issue 16), that was
about 0.1 ms of CPU per call, and POST orders/ makes three cache calls (the
throttle's get and set, the outbox poke's add). A `redis.Redis` is safe to share
between threads: each command borrows a connection from the pool. So one client
per pool, made on first use; pools, servers and options are Django's own.

`add_many`: several `add`s in one pipelined round trip (core.pokes: the after-commit
flags of one transaction, outbox relay and saga start, issue 16).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient


class SharedClientRedisCacheClient(RedisCacheClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, Any] = {}

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        pool = self._get_connection_pool(write)  # type: ignore[attr-defined]
        client = self._clients.get(id(pool))
        if client is None:
            client = self._clients.setdefault(id(pool), self._client(connection_pool=pool))  # type: ignore[attr-defined]
        return client

    def add_many(self, entries: Sequence[tuple[Any, Any, int | None]]) -> list[bool]:
        """`add` of each (key, value, timeout) in one round trip: a pipeline, not a
        MULTI (each SET NX stands alone, as separate `add`s would), same semantics
        as Django's `add` per entry (None never expires, 0 adds and deletes)."""
        pipe = self.get_client(write=True).pipeline(transaction=False)
        for key, value, timeout in entries:
            if timeout == 0:  # Django's add would set and at once delete: added iff absent
                pipe.exists(key)
            else:
                pipe.set(key, self._serializer.dumps(value), ex=timeout, nx=True)  # type: ignore[attr-defined]
        replies = pipe.execute()
        return [
            not reply if timeout == 0 else bool(reply)
            for (_, _, timeout), reply in zip(entries, replies, strict=True)
        ]


class RedisCache(DjangoRedisCache):
    def __init__(self, server: Any, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = SharedClientRedisCacheClient

    def add_many(
        self, entries: Sequence[tuple[str, Any, float | None]], version: int | None = None
    ) -> list[bool]:
        """cache.add for several keys in one Redis round trip (core.pokes batches the
        after-commit flags of one transaction): [(key, value, timeout)] → added?"""
        return self._cache.add_many(  # type: ignore[attr-defined]
            [
                (self.make_and_validate_key(key, version=version), value, self.get_backend_timeout(timeout))
                for key, value, timeout in entries
            ]
        )
