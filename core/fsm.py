"""Reads shared by every app's state machines: the audit trail and the state map.

Each app still owns its models; these helpers take the model class from the
app's own selectors, so no app reads another's tables through them.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from typing import Any

from django.db import models
from django.db.models import Count, F, IntegerField, Min, Value
from django_fsm import FSMField
from django_fsm_log.models import StateLog

from core.sql import prepared, slot


def state_log_rows(logs: Iterable[StateLog], *, label=None) -> list[dict[str, Any]]:
    """Audit rows (django-fsm-log) as plain dicts, in the order given.

    `label(log)` may name the object a row is about (e.g. "refund 7")."""
    return [
        state_log_row(
            log, log.by.get_username() if log.by else None, label=None if label is None else label(log)
        )
        for log in logs
    ]


def state_log_row(log: StateLog, by: str | None, *, label: str | None = None) -> dict[str, Any]:
    """One audit row as state_log_rows gives it, the person's username read already
    (e.g. joined in a hand-written statement)."""
    row = {
        "at": log.timestamp,
        "by": by,
        "transition": log.transition,
        "source": log.source_state,
        "target": log.state,
        "description": log.description or "",
    }
    if label is not None:
        row["object"] = label
    return row


def state_summary(model: type[models.Model], field_name: str, choices: Iterable[tuple[str, str]]) -> dict:
    """Per state: how many rows and the oldest updated_at, plus the state graph read
    from the FSM definition (one grouped query)."""
    field = model._meta.get_field(field_name)
    if not isinstance(field, FSMField):
        raise TypeError(f"{model.__name__}.{field_name} is not a state machine field")
    transitions = sorted({(str(t.source), str(t.target), t.name) for t in field.get_all_transitions(model)})
    counts = {
        row[field_name]: row
        for row in model._default_manager.order_by()
        .values(field_name)
        .annotate(count=Count("pk"), oldest=Min("updated_at"))
    }
    return {
        "states": [
            {
                "state": value,
                "label": label,
                "count": counts.get(value, {}).get("count", 0),
                "oldest_at": counts.get(value, {}).get("oldest"),
            }
            for value, label in choices
        ],
        "transitions": [{"source": s, "target": t, "name": n} for s, t, n in transitions],
    }


def waiting_in_state(
    rows: models.QuerySet,
    *,
    since: str,
    since_before: Any = None,
    exclude_ids: Any = None,
    limit: int = 50,
    fields: Iterable[str] = (),
    counted: bool = True,
) -> tuple[int | None, list[dict[str, Any]]]:
    """Rows (already filtered to one state) that have waited there, oldest first: how
    many in all (past `since_before` when given, without `exclude_ids` — ids or a
    one-column queryset, used as a subquery), and the first `limit` as dicts of
    `fields` plus "since" (the moment they entered the state, read from `since`).
    Two queries whatever the count: the back office's SLA lists (docs/backoffice.md);
    one with limit=0 (the count alone) or counted=False (the rows alone, count None)."""
    if since_before is not None:
        rows = rows.filter(**{f"{since}__lt": since_before})
    if exclude_ids is not None:
        rows = rows.exclude(pk__in=exclude_ids)
    count = rows.count() if counted else None
    limit = max(0, min(int(limit), 500))
    listed = list(rows.order_by(since, "pk").values(*fields, since)[:limit]) if limit and count != 0 else []
    for row in listed:
        row["since"] = row.pop(since)
    return count, listed


def waiting_in_states(
    parts: list[tuple[Callable[[], models.QuerySet], str, Any]],
    *,
    key: Hashable,
    limit: int = 50,
    fields: Iterable[str] = (),
) -> list[list[dict[str, Any]]]:
    """waiting_in_state(counted=False) for several states of ONE app's tables in one
    statement (UNION ALL of each part's oldest `limit`): `parts` are (a callable that
    returns the rows filtered to one state, the `since` field, since_before or None);
    returns, per part, its rows as dicts of `fields` plus "since", oldest first. The
    back office's SLA lists read two states of payments and two of reconciliation each
    time they are drawn; a round trip each cost as much as the rows.

    The statement is compiled once per process (core.sql.prepared) under `key`, which
    must name what the parts' callables filter on (their states); the since_before
    moments are its parameters. Compiling the UNION with the ORM cost more CPU than
    running it (issue 16: ~1 ms a statement, four of them per overview)."""
    fields = tuple(fields)
    limit = max(0, min(int(limit), 500))
    if not parts or not limit:
        return [[] for _ in parts]
    limited = tuple(before is not None for _, _, before in parts)

    def build() -> models.QuerySet:
        columns = [f"w_{f}" for f in fields]
        queries = []
        slots = 0
        for n, (rows_of, since, since_before) in enumerate(parts):
            rows = rows_of()
            if since_before is not None:
                rows = rows.filter(**{f"{since}__lt": slot(slots)})
                slots += 1
            queries.append(
                rows.annotate(
                    **{f"w_{f}": F(f) for f in fields},
                    w_since=F(since),
                    w_part=Value(n, output_field=IntegerField()),
                )
                .order_by(since, "pk")
                .values(*columns, "w_since", "w_part")[:limit]
            )
        return queries[0].union(*queries[1:], all=True) if len(queries) > 1 else queries[0]

    statement = prepared(("waiting_in_states", key, limit, fields, limited), build, slots=sum(limited))
    out: list[list[dict[str, Any]]] = [[] for _ in parts]
    for row in statement.dicts(*(before for _, _, before in parts if before is not None)):
        out[row["w_part"]].append({**{f: row[f"w_{f}"] for f in fields}, "since": row["w_since"]})
    for listed in out:  # UNION ALL keeps each part's rows together, not necessarily in order
        listed.sort(key=lambda r: (r["since"], r.get("id") or 0))
    return out
