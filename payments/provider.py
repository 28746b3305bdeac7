"""HTTP client of the payment provider (the sandbox in development and tests).

Writes (create_charge, create_refund) never raise for a failed call: they return
an Outcome the caller acts on (DESIGN §3).

- SUCCEEDED: the provider did it; the result carries its object.
- DECLINED: a permanent answer. Repeating the request changes nothing: a declined
  card (failure_code card_declined, insufficient_funds, ...) or a request the
  provider refused as invalid (failure_code is the provider's error code, e.g.
  invalid_currency, amount_exceeds_refundable, idempotency_key_reused).
- TRANSIENT: try again later with the SAME idempotency key. Either the request
  surely never reached the provider (connect error or timeout), or the provider
  answered 5xx / 429 / 409 / 401. A 5xx may come after the provider committed
  (that happens: error_after_commit), so TRANSIENT does not promise "nothing
  happened"; what makes the retry safe is the key, which replays the first result.
  401/403 count as transient because a misconfigured key is fixed by an operator,
  not by cancelling the customer's order as declined.
- UNKNOWN: the request was sent and the answer was lost (read timeout, connection
  dropped). The customer may have been charged. Resolve only by retrying with the
  same key or by looking the charge up by reference; never by guessing.

There are no retries inside the client: the saga decides when to try again.

Every call is one provider attempt with an id (`pa_…`): the one bound in the log
context (core/logs.py) if the caller bound one, else a new one. It is sent as
`X-Request-Id`, bound as `provider_attempt_id` for the log lines of the call,
returned on ChargeResult / RefundResult (the ProviderAttempt row stores it), and
each call is counted in /metrics (concord_provider_calls_total, latency histogram).

Reads (get_charge, list_*, iter_*, settlement) return data, and raise
ProviderUnavailable for transient trouble (transport error, 5xx, 429) and
ProviderError for a permanent refusal (4xx other than a 404 on get_charge).
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx
from django.conf import settings

from core import logs, metrics

logger = logging.getLogger(__name__)

T = TypeVar("T")


class Outcome(StrEnum):
    SUCCEEDED = "succeeded"
    DECLINED = "declined"
    TRANSIENT = "transient"
    UNKNOWN = "unknown"


class ProviderChargeStatus(StrEnum):
    """The provider's own word for a charge's state (not a Concord payment status)."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True)
class ProviderCharge:
    id: str
    status: str
    failure_code: str | None
    amount: int
    currency: str
    reference: str
    created: int
    amount_refunded: int = 0


@dataclass(frozen=True)
class ProviderRefund:
    id: str
    charge: str
    amount: int
    currency: str
    status: str
    created: int


@dataclass(frozen=True)
class ChargeResult:
    outcome: Outcome
    charge: ProviderCharge | None
    failure_code: str | None
    error: str | None
    http_status: int | None
    duration_ms: int
    attempt_id: str = ""


@dataclass(frozen=True)
class RefundResult:
    outcome: Outcome
    refund: ProviderRefund | None
    failure_code: str | None
    error: str | None
    http_status: int | None
    duration_ms: int
    attempt_id: str = ""


@dataclass(frozen=True)
class Page(Generic[T]):
    data: list[T]
    has_more: bool


class ProviderError(Exception):
    """A read call failed. `code` is the provider's error code when it sent one."""

    def __init__(self, message: str, *, http_status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.http_status = http_status
        self.code = code


class ProviderUnavailable(ProviderError):
    """A read call failed transiently (transport error, timeout, 5xx, 429): try later."""


# Transport errors raised before a single byte of the request left this process:
# the provider cannot have acted on it.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)
_TRANSIENT_STATUSES = frozenset({401, 403, 409, 429})


@contextlib.contextmanager
def provider_attempt() -> Iterator[str]:
    """The id of the provider attempt made inside the block, bound for its log lines:
    the caller's (a lookup that pages through several requests binds one) or a new one."""
    attempt_id = logs.correlation().get("provider_attempt_id") or logs.new_id("pa_")[:35]
    with logs.scope(provider_attempt_id=attempt_id):
        yield attempt_id


def _charge(data: dict[str, Any]) -> ProviderCharge:
    return ProviderCharge(
        id=str(data["id"]),
        status=str(data["status"]),
        failure_code=data.get("failure_code"),
        amount=int(data["amount"]),
        currency=str(data["currency"]),
        reference=str(data["reference"]),
        created=int(data["created"]),
        amount_refunded=int(data.get("amount_refunded") or 0),
    )


def _refund(data: dict[str, Any]) -> ProviderRefund:
    return ProviderRefund(
        id=str(data["id"]),
        charge=str(data["charge"]),
        amount=int(data["amount"]),
        currency=str(data["currency"]),
        status=str(data["status"]),
        created=int(data["created"]),
    )


def _error_body(response: httpx.Response) -> tuple[str | None, str]:
    """(code, message) from the error envelope, tolerating any body."""
    try:
        error = response.json()["error"]
        return str(error.get("code") or "") or None, str(error.get("message") or "")
    except (ValueError, KeyError, TypeError, AttributeError):
        return None, response.text[:200]


@dataclass(frozen=True)
class _Answer:
    """One write call, classified. `body` is the JSON object of a 2xx/402 answer."""

    outcome: Outcome
    body: dict | None
    failure_code: str | None
    error: str | None
    http_status: int | None
    duration_ms: int


class ProviderClient:
    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        connect_timeout: float,
        read_timeout: float,
        transport: httpx.BaseTransport | None = None,
    ):
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {api_key}", "User-Agent": "concord-provider-client"},
            # Write timeout = read timeout: a request stuck while sending may have
            # been partly received, so it is classified like a read timeout.
            timeout=httpx.Timeout(
                connect=connect_timeout, read=read_timeout, write=read_timeout, pool=connect_timeout
            ),
            transport=transport,
        )

    @classmethod
    def from_settings(cls) -> ProviderClient:
        return cls(
            base_url=settings.PSP_BASE_URL,
            api_key=settings.PSP_API_KEY,
            connect_timeout=settings.PSP_CONNECT_TIMEOUT,
            read_timeout=settings.PSP_READ_TIMEOUT,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ProviderClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- writes ---------------------------------------------------------------

    def create_charge(
        self, *, amount: int, currency: str, payment_method: str, reference: str, idempotency_key: str
    ) -> ChargeResult:
        with provider_attempt() as attempt_id:
            return self._create_charge(
                attempt_id, amount, currency, payment_method, reference, idempotency_key
            )

    def _create_charge(
        self,
        attempt_id: str,
        amount: int,
        currency: str,
        payment_method: str,
        reference: str,
        idempotency_key: str,
    ) -> ChargeResult:
        answer = self._post(
            "/v1/charges",
            {
                "amount": amount,
                "currency": currency,
                "payment_method": payment_method,
                "reference": reference,
            },
            idempotency_key,
            attempt_id,
        )
        charge = None
        outcome, failure_code, error = answer.outcome, answer.failure_code, answer.error
        if answer.body is not None and outcome in (Outcome.SUCCEEDED, Outcome.DECLINED):
            try:
                charge = _charge(answer.body)
            except (KeyError, TypeError, ValueError):
                charge = None
            if charge is None and outcome is Outcome.SUCCEEDED:
                # A 2xx we cannot read: something happened; we cannot say what.
                outcome, error = Outcome.UNKNOWN, "unreadable charge in a success response"
            elif charge is not None and charge.status != ProviderChargeStatus.SUCCEEDED:
                # The sandbox answers a declined card with 200 and status "failed".
                outcome = Outcome.DECLINED
                failure_code = charge.failure_code or failure_code or "declined"
                error = error or f"charge {charge.id} {charge.status}: {failure_code}"
        result = ChargeResult(
            outcome, charge, failure_code, error, answer.http_status, answer.duration_ms, attempt_id
        )
        metrics.provider_call(
            operation="charge", outcome=str(result.outcome), seconds=answer.duration_ms / 1000
        )
        logger.info(
            "provider charge reference=%s key=%s outcome=%s charge=%s status=%s %sms",
            reference, idempotency_key, result.outcome, charge.id if charge else None,
            answer.http_status, answer.duration_ms,
        )  # fmt: skip
        return result

    def create_refund(self, *, charge_id: str, amount: int, idempotency_key: str) -> RefundResult:
        with provider_attempt() as attempt_id:
            return self._create_refund(attempt_id, charge_id, amount, idempotency_key)

    def _create_refund(
        self, attempt_id: str, charge_id: str, amount: int, idempotency_key: str
    ) -> RefundResult:
        answer = self._post(
            "/v1/refunds", {"charge": charge_id, "amount": amount}, idempotency_key, attempt_id
        )
        refund = None
        outcome, error = answer.outcome, answer.error
        if outcome is Outcome.SUCCEEDED:
            try:
                refund = _refund(answer.body or {})
            except (KeyError, TypeError, ValueError):
                outcome, error = Outcome.UNKNOWN, "unreadable refund in a success response"
        result = RefundResult(
            outcome, refund, answer.failure_code, error, answer.http_status, answer.duration_ms, attempt_id
        )
        metrics.provider_call(
            operation="refund", outcome=str(result.outcome), seconds=answer.duration_ms / 1000
        )
        logger.info(
            "provider refund charge=%s key=%s outcome=%s refund=%s status=%s %sms",
            charge_id, idempotency_key, result.outcome, refund.id if refund else None,
            answer.http_status, answer.duration_ms,
        )  # fmt: skip
        return result

    def _post(self, path: str, body: dict, idempotency_key: str, attempt_id: str) -> _Answer:
        started = time.monotonic()

        def elapsed() -> int:
            return int((time.monotonic() - started) * 1000)

        try:
            response = self._http.post(
                path, json=body, headers={"Idempotency-Key": idempotency_key, "X-Request-Id": attempt_id}
            )
        except _NOT_SENT as exc:
            return _Answer(Outcome.TRANSIENT, None, None, f"{type(exc).__name__}: {exc}", None, elapsed())
        except httpx.TransportError as exc:
            # Read/write timeout, connection reset or closed mid-answer: the request
            # was (at least partly) sent, so the provider may have acted on it.
            return _Answer(Outcome.UNKNOWN, None, None, f"{type(exc).__name__}: {exc}", None, elapsed())
        status = response.status_code
        duration = elapsed()
        if 200 <= status < 300:
            try:
                data = response.json()
            except ValueError:
                return _Answer(Outcome.UNKNOWN, None, None, "unreadable success response", status, duration)
            if not isinstance(data, dict):
                return _Answer(Outcome.UNKNOWN, None, None, "unreadable success response", status, duration)
            return _Answer(Outcome.SUCCEEDED, data, None, None, status, duration)
        code, message = _error_body(response)
        error = f"HTTP {status}: {code or ''} {message}".strip()
        if status == 402:
            # A provider that answers declines with 402: the body is the failed charge
            # or an error envelope; both are permanent.
            try:
                data = response.json()
            except ValueError:
                data = None
            if isinstance(data, dict) and "id" in data:
                return _Answer(
                    Outcome.DECLINED, data, data.get("failure_code") or code, error, status, duration
                )
            return _Answer(Outcome.DECLINED, None, code or "declined", error, status, duration)
        if status >= 500 or status in _TRANSIENT_STATUSES:
            return _Answer(Outcome.TRANSIENT, None, code, error, status, duration)
        return _Answer(Outcome.DECLINED, None, code or f"http_{status}", error, status, duration)

    # --- reads ------------------------------------------------------------------

    def health(self, *, timeout: float) -> tuple[bool, str]:
        """Whether the provider answers its health check within `timeout` seconds, and
        what it said (an HTTP status or the transport error's name)."""
        try:
            response = self._http.get("/healthz", timeout=timeout)
        except httpx.HTTPError as exc:
            return False, type(exc).__name__
        return response.status_code == 200, f"HTTP {response.status_code}"

    def _get_found(self, operation: str, path: str, params: dict[str, Any] | None = None) -> httpx.Response:
        """A GET whose 404 is a refusal like any other (ProviderError)."""
        response = self._get(operation, path, params)
        if response is None:  # only a 404 with allow_404
            raise ProviderError(f"GET {path}: HTTP 404", http_status=404, code="not_found")
        return response

    def _get(
        self, operation: str, path: str, params: dict[str, Any] | None = None, *, allow_404: bool = False
    ) -> httpx.Response | None:
        started = time.monotonic()
        outcome = "error"
        try:
            with provider_attempt() as attempt_id:
                response = self._get_answer(path, params, allow_404, attempt_id)
            outcome = "ok" if response is not None else "not_found"
            return response
        except ProviderUnavailable:
            outcome = "unavailable"
            raise
        finally:
            metrics.provider_call(operation=operation, outcome=outcome, seconds=time.monotonic() - started)

    def _get_answer(
        self, path: str, params: dict[str, Any] | None, allow_404: bool, attempt_id: str
    ) -> httpx.Response | None:
        clean = {name: value for name, value in (params or {}).items() if value is not None}
        try:
            response = self._http.get(path, params=clean, headers={"X-Request-Id": attempt_id})
        except httpx.TransportError as exc:
            raise ProviderUnavailable(f"{type(exc).__name__}: {exc}") from exc
        status = response.status_code
        if 200 <= status < 300:
            return response
        if status == 404:
            return None
        code, message = _error_body(response)
        error = f"GET {path}: HTTP {status}: {code or ''} {message}".strip()
        if status >= 500 or status == 429:
            raise ProviderUnavailable(error, http_status=status, code=code)
        raise ProviderError(error, http_status=status, code=code)

    def _json(self, response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError as exc:
            raise ProviderUnavailable(f"unreadable response from {response.request.url.path}") from exc

    def get_charge(self, charge_id: str) -> ProviderCharge | None:
        """The charge, or None when the provider does not know it (404)."""
        if not charge_id:
            return None
        # Quoted: an id is data, it must not be able to change the path.
        response = self._get("get_charge", f"/v1/charges/{quote(charge_id, safe='')}", allow_404=True)
        if response is None:
            return None
        return self._parse(_charge, self._json(response))

    def list_charges(
        self,
        *,
        reference: str | None = None,
        created_gte: int | None = None,
        starting_after: str | None = None,
        limit: int = 100,
    ) -> Page[ProviderCharge]:
        params = {
            "reference": reference,
            "created_gte": created_gte,
            "starting_after": starting_after,
            "limit": limit,
        }
        return self._page("list_charges", "/v1/charges", params, _charge)

    def list_refunds(
        self,
        *,
        charge: str | None = None,
        created_gte: int | None = None,
        starting_after: str | None = None,
        limit: int = 100,
    ) -> Page[ProviderRefund]:
        params = {
            "charge": charge,
            "created_gte": created_gte,
            "starting_after": starting_after,
            "limit": limit,
        }
        return self._page("list_refunds", "/v1/refunds", params, _refund)

    def iter_charges(
        self, *, created_gte: int | None = None, reference: str | None = None
    ) -> Iterator[ProviderCharge]:
        """Every matching charge, oldest first, following the cursor page by page."""
        starting_after = None
        while True:
            page = self.list_charges(
                reference=reference, created_gte=created_gte, starting_after=starting_after
            )
            yield from page.data
            if not page.has_more or not page.data:
                return
            starting_after = page.data[-1].id

    def iter_refunds(
        self, *, created_gte: int | None = None, charge: str | None = None
    ) -> Iterator[ProviderRefund]:
        starting_after = None
        while True:
            page = self.list_refunds(charge=charge, created_gte=created_gte, starting_after=starting_after)
            yield from page.data
            if not page.has_more or not page.data:
                return
            starting_after = page.data[-1].id

    def settlement(self, *, date: datetime.date) -> dict:
        """The provider's settlement report of one UTC day (JSON form): `by_currency`
        rows {currency, charges_count, charges_amount, refunds_count, refunds_amount,
        net} and the `transactions` behind them (refund amounts negative)."""
        response = self._get_found(
            "settlement", "/v1/settlements", {"date": date.isoformat(), "format": "json"}
        )
        data = self._json(response)
        if not isinstance(data, dict):
            raise ProviderUnavailable("unreadable settlement report")
        return data

    def _page(self, operation: str, path: str, params: dict[str, Any], parse) -> Page:
        data = self._json(self._get_found(operation, path, params))
        try:
            return Page(data=[parse(item) for item in data["data"]], has_more=bool(data["has_more"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ProviderUnavailable(f"unreadable list from {path}") from exc

    @staticmethod
    def _parse(parse, data: Any):
        try:
            return parse(data)
        except (KeyError, TypeError, ValueError) as exc:
            raise ProviderUnavailable("unreadable object from the provider") from exc
