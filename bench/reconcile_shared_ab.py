"""A/B of the full pass's shared-join settings on data already loaded (not a test).

Run bench/reconcile_scale.py first (it loads --bench-db and leaves it populated, with the
incidents its passes opened). Then, in one process on the same warm data, round after
round: the floor (the bare anti-join), then one full pass `reconcile_run(sync=False,
full=True)` per variant, the floor again; each pass's ratio is to the mean of the floors
measured around its round. On populated data every full pass is a check pass: it opens
and resolves nothing (printed), so the variants do the same work. The variants: the
planner's hash plans or merge plans, one connection or two, and the kept balances
(RECONCILIATION["KEPT_BALANCES"]: clearing_mismatch's running balance and the kept
open-charge counts) or counting every charge (`--variant` picks some).

    .venv/bin/python bench/reconcile_shared_ab.py --rounds 3 \\
        --database-url postgres://postgres@127.0.0.1:5432/concord_recon --bench-db concord_recon_bench
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.reconcile_scale import _bare, _setup_django

VARIANTS = {
    "hash, one connection": {
        "SHARED_JOIN_MERGE_PLANS": False, "SHARED_JOIN_CONCURRENT": False, "KEPT_BALANCES": False,
    },
    "merge, one connection": {
        "SHARED_JOIN_MERGE_PLANS": True, "SHARED_JOIN_CONCURRENT": False, "KEPT_BALANCES": False,
    },
    "merge, two connections": {
        "SHARED_JOIN_MERGE_PLANS": True, "SHARED_JOIN_CONCURRENT": True, "KEPT_BALANCES": False,
    },
    # the running balance and the kept open-charge counts (docs/reconciliation.md)
    "merge, two connections, kept balances": {
        "SHARED_JOIN_MERGE_PLANS": True, "SHARED_JOIN_CONCURRENT": True, "KEPT_BALANCES": True,
    },
}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--database-url", default=os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/concord")
    )
    parser.add_argument("--bench-db", default="concord_bench")
    parser.add_argument(
        "--variant", action="append", choices=list(VARIANTS), help="only these (repeatable; default: all)"
    )
    args = parser.parse_args()
    _setup_django(args.database_url, args.bench_db)
    from django.conf import settings
    from django.core.cache import cache

    from reconciliation.models import ReconciliationRun
    from reconciliation.services import reconcile_run

    cache.get("bench:reconcile_shared_ab:warm")  # as in a worker: the cache client loaded
    base = dict(getattr(settings, "RECONCILIATION", {}))
    _bare()
    for round_ in range(1, args.rounds + 1):
        out: dict = {"round": round_, "loadavg_before": round(os.getloadavg()[0], 2)}
        floors = []
        passes = {}
        names = args.variant or list(VARIANTS)
        names = names[(round_ - 1) % len(names) :] + names[: (round_ - 1) % len(names)]  # rotate the order
        for name in names:
            settings.RECONCILIATION = {**base, **VARIANTS[name]}
            t = time.perf_counter()
            _bare()
            floors.append(time.perf_counter() - t)
            cpu, t = resource.getrusage(resource.RUSAGE_SELF).ru_utime, time.perf_counter()
            result = reconcile_run(sync=False, full=True)
            seconds = time.perf_counter() - t
            detail = ReconciliationRun.objects.get(pk=result.run_id).detectors
            passes[name] = {
                "s": round(seconds, 3),
                "python_cpu_s": round(resource.getrusage(resource.RUSAGE_SELF).ru_utime - cpu, 3),
                "shared_join_s": detail.get("shared_join", {}).get("seconds"),
                "detector_s": {k: v.get("seconds") for k, v in detail.items() if isinstance(v, dict)},
                "found": result.found,
                "opened": result.opened,
                "resolved": result.auto_resolved,
            }
        t = time.perf_counter()
        _bare()
        floors.append(time.perf_counter() - t)
        for i, p in enumerate(passes.values()):
            p["ratio"] = round(p["s"] / ((floors[i] + floors[i + 1]) / 2), 2)
        out["bare_s"] = [round(f, 3) for f in floors]
        out["order"] = names
        out["passes"] = passes
        out["loadavg_after"] = round(os.getloadavg()[0], 2)
        print(json.dumps(out), flush=True)
        settings.RECONCILIATION = base


if __name__ == "__main__":
    main()
