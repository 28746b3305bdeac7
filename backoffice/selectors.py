"""Reads of the back office's own tables."""

from __future__ import annotations

from .models import ApprovalRequest, ApprovalStatus, StaffAction


def approvals_list(*, status: str | None = ApprovalStatus.PENDING, limit: int = 100) -> list[ApprovalRequest]:
    """One query (requester and decider joined). Returned rows are read-only for templates."""
    qs = ApprovalRequest.objects.select_related("requested_by", "decided_by").order_by("-requested_at", "-id")
    if status:
        qs = qs.filter(status=status)
    return list(qs[:limit])


def approvals_pending_count() -> int:
    return ApprovalRequest.objects.filter(status=ApprovalStatus.PENDING).count()


def approvals_for_order(*, order_id: int) -> list[ApprovalRequest]:
    return list(
        ApprovalRequest.objects.filter(order_id=order_id)
        .select_related("requested_by", "decided_by")
        .order_by("requested_at", "id")
    )


def staff_actions_for_order(*, order_id: int) -> list[StaffAction]:
    return list(
        StaffAction.objects.filter(order_id=order_id).select_related("user").order_by("created_at", "id")
    )
