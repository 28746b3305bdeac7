"""What changed since an instant: the subjects an incremental pass re-evaluates.

Every row a detector reads carries a timestamp the owning app moves on each write
(`updated_at` is `auto_now` on orders, payments and reservations; the provider sync stamps
`last_synced_at`; Concord's refunds are read by `created_at`, and a refund that succeeds
later also updates its payment). The queries run on those timestamps' indexes, so the cost
follows the number of changed rows, not the history. Order lines are written once, with
their order.
"""

from __future__ import annotations

from datetime import datetime

from inventory.selectors import reservations_reconciliation_values
from orders.choices import OrderStatus
from orders.selectors import orders_reconciliation_values
from payments.choices import PaymentStatus
from payments.selectors import payments_reconciliation_values, refunds_reconciliation_values
from reconciliation.models import ProviderCharge, ProviderRefund

from .base import ChangeSet


def changes_since(since: datetime) -> ChangeSet:
    # status IN (every status): the owning apps index (status, updated_at); naming each
    # status lets PostgreSQL range-scan that index instead of reading the whole table.
    order_ids: set[int] = set(
        orders_reconciliation_values()
        .filter(status__in=OrderStatus.values, updated_at__gte=since)
        .values_list("id", flat=True)
    )
    order_ids.update(
        payments_reconciliation_values()
        .filter(status__in=PaymentStatus.values, updated_at__gte=since)
        .values_list("order_id", flat=True)
    )
    refunded_payment_ids = set(
        refunds_reconciliation_values().filter(created_at__gte=since).values_list("payment_id", flat=True)
    )
    if refunded_payment_ids:
        order_ids.update(
            payments_reconciliation_values()
            .filter(id__in=refunded_payment_ids)
            .values_list("order_id", flat=True)
        )
    order_ids.update(
        reservations_reconciliation_values().filter(updated_at__gte=since).values_list("order_id", flat=True)
    )

    # Provider side: charges the sync touched, and the charges of refunds it touched (an
    # old charge refunded today is not re-pulled as a charge, its refund is).
    refunded_charges = ProviderRefund.objects.filter(last_synced_at__gte=since).values("charge_provider_id")
    charge_ids: set[str] = set()
    for order_id, provider_id in (
        ProviderCharge.objects.filter(last_synced_at__gte=since).values_list("order_id", "provider_id")
    ).union(
        ProviderCharge.objects.filter(provider_id__in=refunded_charges).values_list("order_id", "provider_id")
    ):
        if order_id is None:
            charge_ids.add(provider_id)  # a reference that names no order: only the charge
        else:
            order_ids.add(order_id)
    return ChangeSet(since=since, order_ids=frozenset(order_ids), charge_ids=frozenset(charge_ids))
