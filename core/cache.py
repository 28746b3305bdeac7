"""Django's Redis cache backend, with one redis-py client per connection pool.

Django's RedisCacheClient.get_client builds a new `redis.Redis` for every cache
call; its constructor fills a response-callback table of some 170 entries each
time. Measured in-process (bench/api_cpu.py under cProfile, issue 16), that was
about 0.1 ms of CPU per call, and POST orders/ makes three cache calls (the
throttle's get and set, the outbox poke's add). A `redis.Redis` is safe to share
between threads: each command borrows a connection from the pool. So one client
per pool, made on first use; pools, servers and options are Django's own.
"""

from __future__ import annotations

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


class RedisCache(DjangoRedisCache):
    def __init__(self, server: Any, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = SharedClientRedisCacheClient
