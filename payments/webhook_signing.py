"""Verify (and, for tests and tools, produce) the provider's webhook signatures.

Header: `PSP-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>...]` where each v1 is
HMAC-SHA256(secret, "<t>.<raw body>"). Several v1 values let the provider sign with
an old and a new secret while a secret is rotated; one match is enough. The
timestamp bounds replay of a captured request to `tolerance` seconds.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time

SIGNATURE_HEADER = "PSP-Signature"
DEFAULT_TOLERANCE_SECONDS = 300
# Unix seconds in ASCII digits; twelve digits reach the year 33658. Anything longer
# (int() refuses over 4300 digits) or non-ASCII ("²".isdigit() is True) is malformed.
_TIMESTAMP = re.compile(r"[0-9]{1,12}")


class InvalidSignature(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _digest(payload: bytes, secret: str, timestamp: int) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()


def sign_payload(payload: bytes, secret: str, timestamp: int) -> str:
    """The header value the provider sends for `payload` at `timestamp`."""
    return f"t={timestamp},v1={_digest(payload, secret, timestamp)}"


def verify_signature(
    payload: bytes,
    header: str,
    secret: str,
    *,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
    now: int | None = None,
) -> None:
    """Return if `header` signs `payload` with `secret` within `tolerance` seconds
    of `now`; otherwise raise InvalidSignature with the reason."""
    if not secret:
        raise InvalidSignature("no webhook secret configured")
    if not header:
        raise InvalidSignature("missing signature header")
    timestamps: list[str] = []
    signatures: list[str] = []
    for part in header.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if name == "t":
            timestamps.append(value)
        elif name == "v1":
            signatures.append(value)
    if len(timestamps) != 1 or not _TIMESTAMP.fullmatch(timestamps[0]):
        raise InvalidSignature("missing or malformed timestamp")
    if not signatures:
        raise InvalidSignature("no v1 signature")
    timestamp = int(timestamps[0])
    current = int(time.time()) if now is None else now
    if abs(current - timestamp) > tolerance:
        raise InvalidSignature("timestamp outside the tolerance")
    expected = _digest(payload, secret, timestamp)
    # Compare against every candidate without stopping early: constant time per value.
    matched = False
    for candidate in signatures:
        matched |= hmac.compare_digest(expected.encode(), candidate.encode("ascii", "replace"))
    if not matched:
        raise InvalidSignature("signature mismatch")
