"""The simulated shops: K clients placing N orders through the public API.

Each client behaves as a careful real one: every POST carries an Idempotency-Key,
and when the answer is lost (connection error, timeout) or the server says "try
again" (5xx, 503, 429, 409 idempotency_key_in_use), it sends the *same* request
with the *same* key again, until it gets an answer that stands. On top of that
some orders are sent twice on purpose (in a row, or two at once), some keys are
reused for a different body (must be 422), some cards are declined, some orders
are cancelled (while pending, or once confirmed), and stock runs out for some.

Every response to an order POST is kept per key, so the invariant checks can
compare replays byte for byte and count orders per key.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from monitoring.invariants import Response

# What each order does, with its weight.
SCENARIOS = (
    ("ok", 60),
    ("declined", 8),
    ("insufficient_funds", 4),
    ("replay", 10),
    ("concurrent_replay", 5),
    ("key_reused", 3),
    ("cancel_pending", 6),
    ("cancel_confirmed", 4),
)
PAYMENT_METHODS = {"declined": "pm_card_declined", "insufficient_funds": "pm_card_insufficient_funds"}
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
REQUEST_DEADLINE = 120.0  # a client gives one request this long, retries included


@dataclass
class TrafficResult:
    responses: dict[str, list[Response]] = field(default_factory=dict)
    order_ids: set[int] = field(default_factory=set)
    counts: Counter = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)  # answers the API contract rules out
    seconds: float = 0.0


class Traffic:
    def __init__(
        self,
        *,
        urls: list[str],
        tokens: list[str],
        skus: list[str],
        currency: str,
        orders: int,
        seed: int,
        prefix: str,
    ) -> None:
        self.urls = urls
        self.tokens = tokens
        self.skus = skus
        self.currency = currency
        self.orders = orders
        self.prefix = prefix
        self.rng = random.Random(seed)
        self.result = TrafficResult()
        self._lock = threading.Lock()
        self._next = 0
        self.placed = 0
        self.stop = threading.Event()

    # --- bookkeeping ---------------------------------------------------------------------

    def _count(self, what: str, n: int = 1) -> None:
        with self._lock:
            self.result.counts[what] += n

    def _take(self) -> tuple[int, str, dict] | None:
        """The next order to place: its number, scenario and body (drawn under the lock,
        so one seed gives one sequence whatever the thread timing)."""
        with self._lock:
            if self._next >= self.orders or self.stop.is_set():
                return None
            number = self._next
            self._next += 1
            scenario = self.rng.choices([s for s, _ in SCENARIOS], weights=[w for _, w in SCENARIOS])[0]
            lines = self.rng.sample(self.skus, k=self.rng.choice((1, 1, 2)))
            body = {
                "customer_email": f"buyer{number}@simulate.example",
                "currency": self.currency,
                "payment_method": PAYMENT_METHODS.get(scenario, "pm_card_ok"),
                "lines": [{"sku": sku, "quantity": self.rng.randint(1, 3)} for sku in lines],
            }
            return number, scenario, body

    def _keep(self, key: str, response: httpx.Response) -> None:
        with self._lock:
            self.result.responses.setdefault(key, []).append(
                Response(
                    response.status_code,
                    response.content,
                    response.headers.get("Idempotent-Replayed") == "true",
                )
            )
            if response.status_code == 201:
                self.result.order_ids.add(response.json()["id"])

    def _unexpected(self, message: str) -> None:
        with self._lock:
            self.result.unexpected.append(message)

    # --- requests ------------------------------------------------------------------------

    def _post(self, http: httpx.Client, path: str, key: str, body: dict | None) -> httpx.Response | None:
        """POST until an answer stands (retrying the same key), or give up (None)."""
        deadline = time.monotonic() + REQUEST_DEADLINE
        delay = 0.1
        while time.monotonic() < deadline:
            try:
                response = http.post(path, json=body, headers={"Idempotency-Key": key})
            except httpx.HTTPError:
                self._count("transport_errors")
            else:
                self._count(f"http_{response.status_code}")
                in_use = response.status_code == 409 and b"idempotency_key_in_use" in response.content
                if response.status_code not in RETRY_STATUSES and not in_use:
                    return response
                retry_after = response.headers.get("Retry-After", "")
                if retry_after.isdigit():
                    delay = max(delay, min(float(retry_after), 5.0))
            self._count("retries")
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 3.0)
        self._count("gave_up")
        return None

    def _place(self, http: httpx.Client, key: str, body: dict) -> httpx.Response | None:
        response = self._post(http, "/api/v1/orders/", key, body)
        if response is not None:
            self._count(f"answered_by {http.base_url}")
            self._keep(key, response)
            if response.status_code != 201:
                self._unexpected(
                    f"POST orders/ with key {key!r}: {response.status_code} {response.text[:200]}"
                )
        return response

    def _wait_status(self, http: httpx.Client, order_id: int, wanted: set[str], timeout: float) -> str | None:
        deadline = time.monotonic() + timeout
        status = None
        while time.monotonic() < deadline and not self.stop.is_set():
            try:
                response = http.get(f"/api/v1/orders/{order_id}/")
                status = response.json().get("status") if response.status_code == 200 else status
            except (httpx.HTTPError, ValueError):
                pass
            if status in wanted:
                return status
            time.sleep(0.25)
        return status

    def _order(self, http: httpx.Client, number: int, scenario: str, body: dict) -> None:
        key = f"{self.prefix}-{number}"
        if scenario == "concurrent_replay":
            twin: list[httpx.Response | None] = []
            thread = threading.Thread(target=lambda: twin.append(self._place(http, key, body)))
            thread.start()
            first = self._place(http, key, body)
            thread.join()
            self._count("replays_sent")
        else:
            first = self._place(http, key, body)
        if first is None or first.status_code != 201:
            return
        self.placed += 1
        order_id = first.json()["id"]
        if scenario == "replay":
            self._place(http, key, body)
            self._count("replays_sent")
        elif scenario == "key_reused":
            other = {**body, "customer_email": "someone.else@simulate.example"}
            response = self._post(http, "/api/v1/orders/", key, other)
            self._count("keys_reused")
            if response is not None and response.status_code == 201:
                self._keep(key, response)  # a second order for one key: the checks will say so
            if response is not None and response.status_code != 422:
                self._unexpected(f"key {key!r} reused for another body: {response.status_code}, not 422")
        elif scenario in ("cancel_pending", "cancel_confirmed"):
            if scenario == "cancel_confirmed":
                self._wait_status(http, order_id, {"confirmed", "cancelled"}, timeout=60)
            response = self._post(http, f"/api/v1/orders/{order_id}/cancel/", f"{key}-cancel", None)
            self._count("cancels_sent")
            if response is not None and response.status_code not in (202, 409):
                self._unexpected(f"cancel of order {order_id}: {response.status_code} {response.text[:200]}")

    def _client(self, index: int) -> None:
        url = self.urls[index % len(self.urls)]
        token = self.tokens[index % len(self.tokens)]
        with httpx.Client(
            base_url=url,
            headers={"Authorization": f"Token {token}"},
            timeout=httpx.Timeout(30.0, connect=5.0),
        ) as http:
            while (task := self._take()) is not None:
                self._order(http, *task)

    def run(self, *, on_tick: Callable[[], None] | None = None) -> TrafficResult:
        started = time.monotonic()
        threads = [
            threading.Thread(target=self._client, args=(i,), name=f"sim-client-{i}", daemon=True)
            for i in range(len(self.tokens))
        ]
        for thread in threads:
            thread.start()
        while any(t.is_alive() for t in threads):
            if on_tick is not None:
                on_tick()
            time.sleep(0.5)
        self.result.seconds = time.monotonic() - started
        return self.result
