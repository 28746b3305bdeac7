"""Telling an outage of the database from a bug.

An unreachable database (down, restarting, refusing connections) is worth retrying:
the API answers 503 with Retry-After (core.api), a saga pass leaves the run to the
sweeper (sagas.tasks). Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from django import db

# SQLSTATE classes that mean "the server is not there for us right now" (psycopg sets
# none at all when no server answered): 08 connection exception, 57P operator
# intervention (admin/crash shutdown, cannot connect now), 53 insufficient resources
# (too many connections). Timeouts, deadlocks and constraint errors are not among them.
_UNAVAILABLE_SQLSTATES = ("08", "57P", "53")


def database_unavailable(exc: BaseException | None) -> bool:
    """True when `exc` says the database could not be reached or went away mid-request."""
    if isinstance(exc, db.InterfaceError):  # the connection was already closed
        return True
    if not isinstance(exc, db.OperationalError):
        return False
    sqlstate = getattr(exc.__cause__, "sqlstate", None)
    return sqlstate is None or sqlstate.startswith(_UNAVAILABLE_SQLSTATES)
