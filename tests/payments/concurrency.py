"""Run a function from several threads, each with its own database connection,
released together so their transactions really overlap."""

import threading

from django.db import connection


def run_concurrently(fn, args_list):
    barrier = threading.Barrier(len(args_list))
    results: list = [None] * len(args_list)

    def worker(i, args):
        try:
            barrier.wait(timeout=10)
            results[i] = ("ok", fn(*args))
        except Exception as exc:  # noqa: BLE001 - collected for the test to assert on
            results[i] = ("error", exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i, a)) for i, a in enumerate(args_list)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return results
