"""The one door through which the admin runs staff actions (issue 13, item 5).

Every staff action that changes money, stock or a saga runs through the back office's
flow (backoffice.services: the operation's permission, that it is offered now, a
reason, the audit row, and the two-person approval rule). The domain apps' admins may
not import the back office (import contracts: nothing imports backoffice), so the
back office provides its handlers here when it starts (BackofficeConfig.ready) and the
admins call them by name. Without the back office installed, the admin action is
refused: it never falls back to calling a domain service directly.
"""

from __future__ import annotations

from collections.abc import Callable

from core.errors import ConcordError

Handler = Callable[..., str]
_handlers: dict[str, Handler] = {}

ORDER_CANCEL = "order.cancel"  # (order_id, by, reason) -> message
SAGA_OPERATE = "saga.operate"  # (run_id, op, by, reason) -> message


def staff_flow_provide(name: str, handler: Handler) -> None:
    _handlers[name] = handler


def staff_flow_run(name: str, **kwargs: object) -> str:
    """Run the back office's handler `name`; its message for the person. Raises the
    flow's ConcordError (not offered, not permitted, ...) like the back office does."""
    handler = _handlers.get(name)
    if handler is None:
        raise ConcordError(
            "This action runs only through the back office, which is not installed.",
            code="staff_flow_missing",
            http_status=503,
        )
    return handler(**kwargs)
