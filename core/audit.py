"""Who and why: the one check every manual change makes (DESIGN §6.8).

A person's action always names the person and says why; the system (a saga step, a
reconciliation pass) may be terse. Services call these instead of re-deriving the
rule, so every entry point (API, back office, admin, shell) gives the same answer.
"""

from __future__ import annotations

from typing import Any

from core.errors import ConcordError

MAX_REASON_LENGTH = 4000


class ReasonRequired(ConcordError):
    code = "reason_required"


class PersonRequired(ConcordError):
    code = "person_required"
    http_status = 403


def is_person(by: Any) -> bool:
    return by is not None and bool(getattr(by, "is_authenticated", False))


def require_person(by: Any) -> None:
    if not is_person(by):
        raise PersonRequired("A person must perform this action.")


def check_reason(reason: Any, *, by: Any = None, required: bool = False, what: str = "reason") -> str:
    """The reason, stripped. Required when `required` or when a person acts (`by` is
    not None); refused when it is not text or longer than MAX_REASON_LENGTH."""
    if not isinstance(reason, str):
        raise ReasonRequired(f"The {what} must be text.", details={"field": what})
    cleaned = reason.strip()
    if not cleaned and (required or by is not None):
        raise ReasonRequired(f"A {what} is required.", details={"field": what})
    if len(cleaned) > MAX_REASON_LENGTH:
        raise ReasonRequired(
            f"The {what} is longer than {MAX_REASON_LENGTH} characters.", details={"field": what}
        )
    return cleaned


def check_person_and_reason(by: Any, reason: Any) -> str:
    """A person's manual action: who (an authenticated user) and why (non-blank)."""
    require_person(by)
    return check_reason(reason, by=by, required=True)
