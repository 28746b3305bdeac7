"""Several hosts against one database (docs/deployment.md): two web processes and two
workers with different host names take a storm of orders; the saga step log and the
leases show that no step ran twice and no lease was lost."""

from __future__ import annotations

from collections import Counter

import pytest
from django.contrib.auth.models import User

from orders.selectors import order_facts
from sagas.models import SagaRun, SagaStepLog

from .conftest import scrape
from .test_simulate import simulate, violations

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_two_webs_and_two_workers_on_one_database_never_run_a_step_twice_nor_lose_a_lease(psp):
    before = scrape()

    code, report, log = simulate(
        psp, "--spawn", "--webs", "2", "--workers", "2", "--orders", "200", "--clients", "8", "--seed", "5"
    )

    assert code == 0, (violations(report), log[-4000:])
    # both web servers took orders, both worker hosts ran steps
    assert len(report["traffic"]["by_web"]) == 2 and all(n > 20 for n in report["traffic"]["by_web"].values())
    assert report["engine"]["workers"] == ["sim-worker-0@sim-host-0", "sim-worker-1@sim-host-1"]

    clients = User.objects.filter(username__startswith=f"{report['run']}-c").values_list("pk", flat=True)
    order_ids = [str(row["id"]) for row in order_facts(client_ids=list(clients))]
    assert len(order_ids) == 200
    runs = SagaRun.objects.filter(subject_id__in=order_ids)
    logs = SagaStepLog.objects.filter(run__in=runs)
    # no step ran twice: one attempt per run, step and direction, and it finished
    attempts = Counter(logs.values_list("run_id", "step", "direction"))
    assert attempts and max(attempts.values()) == 1, [k for k, n in attempts.items() if n > 1][:10]
    assert set(logs.values_list("outcome", flat=True)) <= {"done", "fail"}
    # no lease was lost: none expired under a pass, none was taken over, none is left held
    assert not logs.filter(outcome="lease_expired").exists()
    assert not runs.exclude(lease_owner="").exists()
    assert set(runs.values_list("status", flat=True)) <= {"completed", "compensated"}
    after = scrape()
    for saga in ("checkout", "order_cancellation"):
        lost = after.value("concord_saga_leases_lost_total", saga=saga) - before.value(
            "concord_saga_leases_lost_total", saga=saga
        )
        assert lost == 0, saga
    # the passes were spread over both hosts
    hosts = Counter(
        worker.split("@", 1)[1].split("/", 1)[0] for worker in logs.values_list("worker", flat=True)
    )
    assert set(hosts) == {"sim-host-0", "sim-host-1"}
