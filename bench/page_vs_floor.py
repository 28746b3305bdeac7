"""One back-office page against the floor page, interleaved request by request in one
process, so both see the same load: the p50 ratio of wall time and of CPU
(time.process_time) on a shared machine, where bench/backoffice_pages.py's floor and
pages, measured minutes apart, see different loads.

    BENCH_DATABASE=concord_pages_bench .venv/bin/python bench/page_vs_floor.py \\
        [--root PATH] [--url /backoffice/finance/] [--user bench-finance] [--requests 300]

Runs on a database bench/backoffice_pages.py seeded and left (--keep), logged in with a
session that bench already stored for its users (nothing is written to the database).
--root runs another checkout's code (e.g. a `git archive main` unpacked) against the
same database and cache: alternate it with this one's for an A/B. Production's keeping
(probes and counts 5 s, finance figures 60 s, the default range's figures marked fresh
before the run) as in bench/backoffice_pages.py.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=str(Path(__file__).resolve().parents[1]))
    parser.add_argument("--url", default="/backoffice/finance/")
    parser.add_argument("--user", default="bench-finance")
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    server = os.environ.get("POSTGRES_URL", "postgres://postgres@127.0.0.1:5432").rstrip("/")
    os.environ["DATABASE_URL"] = f"{server}/{os.environ.get('BENCH_DATABASE', 'concord_bench_bo')}"
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.test"
    os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/12")
    os.environ["PSP_BASE_URL"] = "http://127.0.0.1:9"
    sys.path.insert(0, args.root)
    os.chdir(args.root)
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.contrib.sessions.models import Session
    from django.core.cache import cache
    from django.test import Client
    from django.utils import timezone

    from backoffice import finance

    settings.ALLOWED_HOSTS = ["*"]
    settings.BACKOFFICE_PROBE_SECONDS = 5.0
    settings.BACKOFFICE_COUNTS_SECONDS = 5.0
    settings.BACKOFFICE_FINANCE_FIGURES_SECONDS = 60.0

    def client_for(username: str) -> Client:
        uid = str(User.objects.get(username=username).pk)
        key = next(
            s.session_key
            for s in Session.objects.filter(expire_date__gt=timezone.now()).order_by("-expire_date")
            if s.get_decoded().get("_auth_user_id") == uid
        )
        client = Client()
        client.cookies[settings.SESSION_COOKIE_NAME] = key
        return client

    start, end = finance.default_range()
    kept = cache.get(finance.figures_key(start, end)) or finance.figures_refresh(start=start, end=end)
    cache.set(finance.figures_key(start, end), {**kept, "figures_at": timezone.now()}, timeout=3600)
    floor, page = client_for("bench-support"), client_for(args.user)
    for _ in range(20):  # warm-up: connections, templates, plans
        floor.get("/backoffice/search/")
        page.get(args.url)
    wall: dict[str, list[float]] = {"floor": [], "page": []}
    cpu: dict[str, list[float]] = {"floor": [], "page": []}
    for _ in range(args.requests):
        for name, client, url in (("floor", floor, "/backoffice/search/"), ("page", page, args.url)):
            w, c = time.perf_counter(), time.process_time()
            assert client.get(url).status_code == 200, url
            wall[name].append((time.perf_counter() - w) * 1000)
            cpu[name].append((time.process_time() - c) * 1000)
    m = statistics.median
    print(
        f"{args.root}: {args.url} wall p50 {m(wall['page']):.2f} ms, floor {m(wall['floor']):.2f} ms, "
        f"ratio {m(wall['page']) / m(wall['floor']):.2f} | CPU p50 {m(cpu['page']):.2f} ms, "
        f"floor {m(cpu['floor']):.2f} ms, ratio {m(cpu['page']) / m(cpu['floor']):.2f} | "
        f"load {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()
