"""Who may act on incidents.

Staff act through Django permissions, which backoffice/roles.py grants to the support
group (`reconciliation.change_incident`); a superuser may do everything. Finance only
views (`view_incident`). Checked in the services, so every entry point (staff pages,
admin, shell) gets the same answer.
"""

from __future__ import annotations

from typing import Any

from .errors import ActionNotPermitted

CHANGE_INCIDENT = "reconciliation.change_incident"
VIEW_INCIDENT = "reconciliation.view_incident"


def can_act_on_incidents(user: Any) -> bool:
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    if user.is_superuser:
        return True
    return bool(user.is_staff and user.has_perm(CHANGE_INCIDENT))


def require_incident_actor(user: Any) -> None:
    if not can_act_on_incidents(user):
        raise ActionNotPermitted(
            "Only support staff may act on incidents.",
            details={"required_permission": CHANGE_INCIDENT},
        )
