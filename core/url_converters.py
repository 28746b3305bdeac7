"""Path converters shared by the apps' API URLs."""

from __future__ import annotations


class BigIntIdConverter:
    """At most 18 digits: always inside PostgreSQL's bigint, so an absurd id is the
    catch-all's 404, never an out-of-range database error."""

    regex = "[0-9]{1,18}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)
