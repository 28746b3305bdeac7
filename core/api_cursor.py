"""Opaque keyset cursors for paginated lists: base64 of "<prefix><value>".

The prefix names the list, so a cursor from one list is refused by another; a
cursor we did not make is a 400 on `cursor`, never a 500.
"""

from __future__ import annotations

import base64
import binascii

from rest_framework import serializers

MAX_DIGITS = 18  # inside PostgreSQL's bigint


def encode_cursor(prefix: str, value: int | str) -> str:
    return base64.urlsafe_b64encode(f"{prefix}{value}".encode()).decode().rstrip("=")


def decode_int_cursor(prefix: str, token: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raw = ""
    value = raw[len(prefix) :] if raw.startswith(prefix) else ""
    if not value.isascii() or not value.isdigit() or len(value) > MAX_DIGITS:
        raise serializers.ValidationError({"cursor": ["Not a cursor from this API."]})
    return int(value)
