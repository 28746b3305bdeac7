"""Webhook signatures, the sandbox's own copy (it may not import Concord).

Header `PSP-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`.
Concord verifies with payments/webhook_signing.py; a test checks both agree.
"""

import hashlib
import hmac


def sign(payload: bytes, secret: str, timestamp: int) -> str:
    signed = f"{timestamp}.".encode() + payload
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"
