"""How a saga is declared: ordered steps, each with an action, an optional
compensation, a retry policy and a timeout. Definitions are plain frozen data;
the executor (sagas/executor.py) interprets them against a SagaRun row.

Step contract (see docs/saga-engine.md): actions and compensations are
idempotent — a step may run again after a crash or a lost lease, so it must
produce its effect at most once (unique keys for local writes,
`ctx.idempotency_key()` for external calls). A compensation must also tolerate
the forward effect being absent (nothing to undo = done).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

StepKind = Literal["done", "retry", "fail"]


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter. `max_attempts` counts every attempt of one
    step in one direction, the first included."""

    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0
    # Fraction of the delay that is randomised away (0 = none, 1 = "full jitter"),
    # so that many runs failing together do not retry in lockstep.
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_delay < 0 or self.max_delay < 0 or not 0 <= self.jitter <= 1:
            raise ValueError("delays must be >= 0 and jitter within [0, 1]")

    def delay(self, failed_attempts: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after the `failed_attempts`-th failure (1-based)."""
        exponent = max(failed_attempts - 1, 0)
        capped = min(self.max_delay, self.base_delay * (2 ** min(exponent, 62)))
        rand = (rng or random).random()
        return capped * (1 - self.jitter * rand)


@dataclass(frozen=True)
class StepResult:
    kind: StepKind
    data: dict = field(default_factory=dict)
    error: str = ""
    failure_code: str = ""


def done(data: dict | None = None) -> StepResult:
    """The step's effect is in place; `data` is merged into the run's context."""
    return StepResult(kind="done", data=dict(data or {}))


def retry(error: str) -> StepResult:
    """Transient trouble (timeout, 5xx, unknown outcome): try again later."""
    return StepResult(kind="retry", error=error)


def fail(error: str, failure_code: str) -> StepResult:
    """Permanent failure (declined, out of stock). The step promises it left no
    effect; the run compensates the steps before it with `failure_code`."""
    if not failure_code:
        raise ValueError("fail() needs a failure_code")
    return StepResult(kind="fail", error=error, failure_code=failure_code)


@dataclass
class StepContext:
    run_id: int
    saga_type: str
    subject_id: str
    # Read-only view of the run's accumulated context (a copy: mutating it changes nothing).
    context: Mapping[str, Any]
    attempt: int
    step: str
    direction: Literal["forward", "compensate"]
    failure_code: str = ""
    # time.monotonic() value after which the executor counts the attempt as timed out.
    deadline: float = 0.0

    def idempotency_key(self, suffix: str = "") -> str:
        """Deterministic from run, step and direction (+ suffix): identical on every
        retry, different between a step and its compensation."""
        key = f"saga:{self.run_id}:{self.step}"
        if self.direction == "compensate":
            key += ":compensate"
        if suffix:
            key += f":{suffix}"
        return key

    def remaining(self) -> float:
        """Seconds left before the step timeout; pass it to HTTP clients so the call
        gives up before the executor stops waiting for it."""
        return max(self.deadline - time.monotonic(), 0.0)


@dataclass(frozen=True)
class Step:
    name: str
    # A StepResult; with `apply` (below) whatever the call learnt, for apply to record.
    action: Callable[[StepContext], Any]
    compensation: Callable[[StepContext], StepResult] | None = None
    retry: RetryPolicy = RetryPolicy()
    timeout: float = 30.0
    # True: the action runs inside the checkpoint's transaction (local DB work;
    # its writes commit with the checkpoint or not at all). False: external calls;
    # no transaction or row lock is held while it runs.
    transactional: bool = True
    # External steps only: records what the call established. With `apply`, the
    # forward action makes the call and returns whatever it learnt (any value);
    # `apply(ctx, call_result)` then runs INSIDE the checkpoint transaction (in a
    # savepoint, after the lease check) and returns the StepResult. Its writes
    # commit with the checkpoint whatever result it returns (a decline is a fact
    # to keep), so the step costs one commit; if it raises, they roll back and
    # the attempt counts as an error (retried: the call must be idempotent).
    apply: Callable[[StepContext, Any], StepResult] | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a step needs a name")
        if self.timeout <= 0:
            raise ValueError("timeout must be positive")
        if self.apply is not None and self.transactional:
            raise ValueError("apply is for external (transactional=False) steps")


@dataclass(frozen=True)
class SagaDefinition:
    name: str
    steps: tuple[Step, ...]
    sla: timedelta
    # Runs in the final checkpoint's transaction once compensation has finished.
    on_compensated: Callable[[StepContext], None] | None = None
    # What the subject id is called in log lines (e.g. "order_id"), so a run's lines
    # carry the same correlation id as the rest of its subject's story (core/logs.py).
    subject_log_key: str = "saga_subject"

    def __post_init__(self) -> None:
        if not self.steps:
            raise ValueError("a saga needs at least one step")
        names = [step.name for step in self.steps]
        if len(set(names)) != len(names):
            raise ValueError(f"step names must be unique in {self.name}: {names}")
        if len(self.name) > 64 or any(len(n) > 64 for n in names):
            raise ValueError("saga and step names are at most 64 characters")
