"""Input serializers that refuse what they do not declare.

A client that sends a field we do not know (a price, a status, a secret) has a bug
we would rather show than silently ignore: each unknown key is a 400 that names it.
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

UNKNOWN_FIELD_MESSAGE = "Unknown field."


class StrictSerializer(serializers.Serializer):
    """Rejects keys it does not declare, each named in the error's details."""

    unknown_field_message = UNKNOWN_FIELD_MESSAGE

    def to_internal_value(self, data: Any) -> Any:
        errors: dict[str, list[str]] = {}
        if isinstance(data, dict):
            errors = {str(name): [self.unknown_field_message] for name in data if name not in self.fields}
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            if errors and isinstance(exc.detail, dict):
                exc.detail.update(errors)
            raise
        if errors:
            raise serializers.ValidationError(errors)
        return value
