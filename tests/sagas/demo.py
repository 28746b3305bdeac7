"""Demo saga definitions for the engine's tests, registered on import (the test
process imports this module; worker subprocesses get it with `-I tests.sagas.demo`).

There is no test app, so effects are recorded where both the test and a worker
process can see them:
- local (transactional) steps create an auth Group named `demo:<run>:<step>`:
  a real table, idempotent by its unique name, rolled back with the step;
- external steps push to a Redis list `demo:effects:<run>`, at most once per
  `ctx.idempotency_key()` (SET NX) — the idempotency contract of a real provider.

Behaviour is scripted per run and step through a Redis list `demo:plan:…`
(see `plan()`): each attempt pops one instruction, an empty list means "done".
"""

from __future__ import annotations

import functools
import time
from datetime import timedelta

import redis
from django.conf import settings
from django.contrib.auth.models import Group
from django.db import connection

from sagas import registry
from sagas.definition import (
    RetryPolicy,
    SagaDefinition,
    Step,
    StepContext,
    StepResult,
    done,
    fail,
    retry,
)

FAST = RetryPolicy(max_attempts=3, base_delay=0.2, max_delay=0.4, jitter=0.0)


@functools.cache
def client() -> redis.Redis:
    return redis.Redis.from_url(settings.CELERY_BROKER_URL)


def _plan_key(run_id: int, step: str, direction: str) -> str:
    return f"demo:plan:{run_id}:{step}:{direction}"


def plan(run_id: int, step: str, *instructions: str, direction: str = "forward") -> None:
    """Script the next attempts of a step: "retry", "fail", "raise", "sleep:<s>"
    (sleep, then do the effect), "effect_then_sleep:<s>" (effect first — a crash
    during the sleep leaves the effect applied but not checkpointed), "dbsleep:<s>"
    (a slow SQL statement). Unscripted attempts succeed."""
    client().rpush(_plan_key(run_id, step, direction), *instructions)


def external_effects(run_id: int) -> list[str]:
    return [item.decode() for item in client().lrange(f"demo:effects:{run_id}", 0, -1)]


def local_effects(run_id: int) -> list[str]:
    prefix = f"demo:{run_id}:"
    return sorted(
        name.removeprefix(prefix)
        for name in Group.objects.filter(name__startswith=prefix).values_list("name", flat=True)
    )


def calls(run_id: int, step: str, direction: str = "forward") -> int:
    return int(client().get(f"demo:calls:{run_id}:{step}:{direction}") or 0)


def compensated_with(run_id: int) -> str | None:
    value = client().get(f"demo:compensated:{run_id}")
    return value.decode() if value is not None else None


def clear() -> None:
    keys = list(client().scan_iter("demo:*", count=1000))
    if keys:
        client().delete(*keys)


def _label(ctx: StepContext) -> str:
    return ctx.step if ctx.direction == "forward" else f"undo_{ctx.step}"


def _behave(ctx: StepContext, effect) -> StepResult:
    client().incr(f"demo:calls:{ctx.run_id}:{ctx.step}:{ctx.direction}")
    raw = client().lpop(_plan_key(ctx.run_id, ctx.step, ctx.direction))
    instruction = raw.decode() if raw is not None else "done"
    name, _, arg = instruction.partition(":")
    if name == "retry":
        return retry(f"planned transient failure (attempt {ctx.attempt})")
    if name == "fail":
        return fail("planned permanent failure", "demo_failed")
    if name == "raise":
        raise RuntimeError("planned crash")
    if name == "sleep":
        time.sleep(float(arg))
    if name == "dbsleep":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_sleep(%s)", [float(arg)])
    effect(ctx)
    if name == "effect_then_sleep":
        time.sleep(float(arg))
    return done({f"{_label(ctx)}_attempt": ctx.attempt})


def _local_effect(ctx: StepContext) -> None:
    # get_or_create on a unique name: idempotent, and part of the step's transaction.
    Group.objects.get_or_create(name=f"demo:{ctx.run_id}:{_label(ctx)}")


def _external_effect(ctx: StepContext) -> None:
    # What a provider does with an idempotency key: the first request takes effect.
    if client().set(f"demo:done:{ctx.idempotency_key()}", 1, nx=True):
        client().rpush(f"demo:effects:{ctx.run_id}", _label(ctx))


def local(ctx: StepContext) -> StepResult:
    return _behave(ctx, _local_effect)


def external(ctx: StepContext) -> StepResult:
    return _behave(ctx, _external_effect)


def on_compensated(ctx: StepContext) -> None:
    client().set(f"demo:compensated:{ctx.run_id}", ctx.failure_code)
    Group.objects.get_or_create(name=f"demo:{ctx.run_id}:compensated")


def _step(name: str, fn, *, timeout: float = 2.0, transactional: bool = True, **kwargs) -> Step:
    return Step(
        name=name,
        action=fn,
        compensation=fn,
        retry=FAST,
        timeout=timeout,
        transactional=transactional,
        **kwargs,
    )


# Three local steps.
LOCAL = registry.register(
    SagaDefinition(
        name="demo.local",
        steps=(_step("a", local), _step("b", local), _step("c", local)),
        sla=timedelta(minutes=5),
        on_compensated=on_compensated,
    ),
    replace=True,
)

# The checkout's shape: local, external, local (the last has no compensation).
MIXED = registry.register(
    SagaDefinition(
        name="demo.mixed",
        steps=(
            _step("a", local),
            _step("b", external, timeout=3.0, transactional=False),
            Step(name="c", action=local, retry=FAST, timeout=2.0),
        ),
        sla=timedelta(minutes=5),
        on_compensated=on_compensated,
    ),
    replace=True,
)

# Starts with an external step: the pass needs one lease commit first.
EXTERNAL_FIRST = registry.register(
    SagaDefinition(
        name="demo.external_first",
        steps=(_step("x", external, transactional=False), _step("y", local), _step("z", local)),
        sla=timedelta(minutes=5),
    ),
    replace=True,
)

# Short timeouts, for the timeout tests.
QUICK = registry.register(
    SagaDefinition(
        name="demo.quick",
        steps=(
            _step("fast_local", local, timeout=0.5),
            _step("fast_external", external, timeout=0.5, transactional=False),
        ),
        sla=timedelta(seconds=1),
    ),
    replace=True,
)


def record(ctx: StepContext, call: StepResult) -> StepResult:
    """An external step's apply: writes down what the call returned (a local
    write in the checkpoint transaction), or raises when scripted with
    plan(run, step, "raise", direction="apply")."""
    raw = client().lpop(_plan_key(ctx.run_id, ctx.step, "apply"))
    if raw == b"raise":
        Group.objects.create(name=f"demo:{ctx.run_id}:apply_rolled_back")
        raise RuntimeError("planned crash in apply")
    Group.objects.get_or_create(name=f"demo:{ctx.run_id}:recorded_{ctx.attempt}_{call.kind}")
    return call


# The checkout's shape with the external step's effect recorded by `apply`.
RECORDED = registry.register(
    SagaDefinition(
        name="demo.recorded",
        steps=(
            _step("a", local),
            _step("b", external, timeout=3.0, transactional=False, apply=record),
            Step(name="c", action=local, retry=FAST, timeout=2.0),
        ),
        sla=timedelta(minutes=5),
        on_compensated=on_compensated,
    ),
    replace=True,
)
