"""The one INSERT … ON CONFLICT … DO NOTHING RETURNING statement every app writes.

Why raw SQL: Django's create() raises IntegrityError on a duplicate, and surviving
that inside a caller's transaction needs a savepoint (two round trips) per call. On
PostgreSQL a conflicting INSERT waits for a concurrent inserter of the same key to
commit and then does nothing, so "insert unless it exists" is one round trip and
never an error. Used where the hot path writes a row that may already exist (a
checkout payment, a saga run, an idempotency key).

Identifiers come from the models' own metadata, quoted; every value is a parameter.
"""

from __future__ import annotations

import datetime
import functools
import uuid
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection, connections, transaction
from django.db.backends.utils import CursorDebugWrapper, CursorWrapper
from django.db.models import (
    NOT_PROVIDED,
    BooleanField,
    CharField,
    DateTimeField,
    DecimalField,
    Field,
    IntegerField,
    JSONField,
    Model,
    TextField,
)
from psycopg import ClientCursor
from psycopg import Cursor as ServerBindingCursor
from psycopg.postgres import types as pg_types
from psycopg.pq import Format

M = TypeVar("M", bound=Model)


def concrete_field(model: type[Model], name: str) -> Field:
    """A model's own (column-backed) field by name, for SQL written by hand."""
    field = model._meta.get_field(name)
    if not isinstance(field, Field) or field.column is None:
        raise LookupError(f"{model.__name__}.{name} is not a column")
    return field


def column(model: type[Model], name: str) -> str:
    """The quoted column of a model's field."""
    return connection.ops.quote_name(str(concrete_field(model, name).column))


def insert_do_nothing_sql(model: type[Model], fields: Sequence[str], conflict: Sequence[str]) -> str:
    """`INSERT INTO <table> (<fields>) VALUES (%s, …) ON CONFLICT (<conflict>) DO NOTHING
    RETURNING <pk>`: the new row's primary key, or no row when the key exists.

    Built once per shape and process: each accepted order runs three of these, and
    building them (field lookups, quoting) cost more CPU than running them
    (bench/api_cpu.py, issue 16)."""
    return _insert_do_nothing_sql(model, tuple(fields), tuple(conflict))


@functools.lru_cache(maxsize=256)
def _insert_do_nothing_sql(model: type[Model], fields: tuple[str, ...], conflict: tuple[str, ...]) -> str:
    quote = connection.ops.quote_name
    pk = model._meta.pk
    assert pk is not None
    return (
        f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(column(model, f) for f in fields)}) "  # noqa: S608
        f"VALUES ({', '.join(['%s'] * len(fields))}) "
        f"ON CONFLICT ({', '.join(column(model, f) for f in conflict)}) DO NOTHING "
        f"RETURNING {quote(pk.column)}"
    )


def insert_unless_exists(instance: Model, *, conflict: Sequence[str]) -> bool:
    """Insert `instance` unless a row with the same `conflict` columns exists (one round
    trip, never an IntegrityError). True when inserted: `instance` then has its pk and
    is saved; False when the key was taken (read the existing row yourself)."""
    model = type(instance)
    sql, readers = _insert_plan(model, tuple(conflict))
    conn = connections[DEFAULT_DB_ALIAS]
    ops = conn.ops
    values = [read(instance, ops, conn) for read in readers]
    with conn.cursor() as cursor:
        cursor.execute(sql, values)
        row = cursor.fetchone()
    if row is None:
        return False
    instance.pk = row[0]
    instance._state.adding = False
    instance._state.db = DEFAULT_DB_ALIAS
    return True


# A column's value for an INSERT: (instance, connection.ops, connection) -> parameter.
_Reader = Callable[[Model, Any, Any], Any]


@functools.lru_cache(maxsize=256)
def _insert_plan(model: type[Model], conflict: tuple[str, ...]) -> tuple[str, tuple[_Reader, ...]]:
    """insert_unless_exists's statement and one value reader per column, built once per
    model and process (issue 16: preparing each value through the field's
    pre_save/get_db_prep_save chain cost 8-10 % of an accepted order's CPU)."""
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    sql = insert_do_nothing_sql(model, [f.name for f in fields], conflict)
    return sql, tuple(_value_reader(f) for f in fields)


def _inherits(field: Field, base: type[Field], *methods: str) -> bool:
    """`field` is a `base` whose class overrides none of `methods` (so a subclass that
    changes how values are prepared, e.g. an encrypted field, is never fast-pathed)."""
    cls = type(field)
    return isinstance(field, base) and all(getattr(cls, m) is getattr(base, m) for m in methods)


_PREP = ("to_python", "get_prep_value", "get_db_prep_value", "get_db_prep_save")


def _value_reader(field: Field) -> _Reader:
    """What `field.get_db_prep_save(field.pre_save(instance, add=True), connection)`
    returns, without the chain of calls when the attribute already holds the plain
    value the chain would return unchanged: a str for a char/text field, an int for
    an integer field, a bool, a finite Decimal, an aware datetime, a dict or list
    for JSON (handed to the backend's own adapter, as the chain does), or None
    (NULL for all of these). Anything else — an expression, a lazy string, a naive
    datetime, a str in an integer column, a NaN — takes the chain itself, so
    conversions and errors stay Django's."""
    attname = field.attname

    def chain(instance: Model, ops: Any, conn: Any) -> Any:
        return field.get_db_prep_save(field.pre_save(instance, add=True), conn)

    if _inherits(field, DateTimeField, "pre_save", *_PREP):
        # auto_now / auto_now_add: pre_save sets the attribute to now (an aware datetime).
        stamped = field.auto_now or field.auto_now_add  # type: ignore[attr-defined]

        def read_datetime(instance: Model, ops: Any, conn: Any) -> Any:
            value = field.pre_save(instance, add=True) if stamped else getattr(instance, attname)
            if value is None:
                return None
            if type(value) is datetime.datetime and value.utcoffset() is not None:
                return ops.adapt_datetimefield_value(value)
            return field.get_db_prep_save(value, conn)

        return read_datetime

    if type(field).pre_save is not Field.pre_save:
        return chain

    plain: type | None = None
    if _inherits(field, CharField, *_PREP) or _inherits(field, TextField, *_PREP):
        plain = str
    elif _inherits(field, BooleanField, *_PREP):
        plain = bool
    if plain is not None:

        def read_plain(instance: Model, ops: Any, conn: Any) -> Any:
            value = getattr(instance, attname)
            if value is None or type(value) is plain:
                return value
            return field.get_db_prep_save(value, conn)

        return read_plain

    if _inherits(field, IntegerField, *_PREP):
        internal_type = field.get_internal_type()

        def read_int(instance: Model, ops: Any, conn: Any) -> Any:
            value = getattr(instance, attname)
            if value is None:
                return None
            if type(value) is int:
                return ops.adapt_integerfield_value(value, internal_type)
            return field.get_db_prep_save(value, conn)

        return read_int

    if _inherits(field, DecimalField, *_PREP):
        max_digits, places = field.max_digits, field.decimal_places  # type: ignore[attr-defined]

        def read_decimal(instance: Model, ops: Any, conn: Any) -> Any:
            value = getattr(instance, attname)
            if value is None:
                return None
            if type(value) is Decimal and value.is_finite():
                return ops.adapt_decimalfield_value(value, max_digits, places)
            return field.get_db_prep_save(value, conn)

        return read_decimal

    if _inherits(field, JSONField, *_PREP):
        encoder = field.encoder  # type: ignore[attr-defined]

        def read_json(instance: Model, ops: Any, conn: Any) -> Any:
            value = getattr(instance, attname)
            if value is None:
                return None
            if type(value) is dict or type(value) is list:
                return ops.adapt_json_value(value, encoder)
            return field.get_db_prep_save(value, conn)

        return read_json

    return chain


def in_open_transaction() -> bool:
    """True inside a caller's atomic block. Services that call another system over HTTP
    refuse to run then: the call would hold the caller's row locks for its whole
    duration and its effect would survive the caller's rollback. Django's test cases
    wrap each test in atomic blocks marked _from_testcase; those do not count."""
    return any(
        not getattr(block, "_from_testcase", False) for block in transaction.get_connection().atomic_blocks
    )


def select_columns(model: type[Model]) -> str:
    """The quoted, table-qualified columns of a model's concrete fields, in field
    order: the select list of a hand-written SELECT whose rows `instance_from_row`
    turns into instances."""
    return _row_reader(model)[0]


def instance_from_row(model: type[M], row: Sequence[Any]) -> M:
    """A model instance from a row selected with `select_columns(model)` first: the
    same converters the ORM applies (JSON, decimals…), then Model.from_db, so the
    instance is what `Model.objects.get` would have returned. For hot paths that
    read the same shape of row many times (a statement compiled by the ORM costs
    more CPU than running it: issue 16)."""
    _, attnames, converters = _row_reader(model)
    values = list(row[: len(attnames)])
    for index, funcs, expression in converters:
        value = values[index]
        for func in funcs:
            value = func(value, expression, connection)
        values[index] = value
    return model.from_db(connection.alias, attnames, values)


@functools.cache
def _row_reader(model: type[Model]) -> tuple[str, list[str], list[tuple[int, list[Any], Any]]]:
    quote = connection.ops.quote_name
    table = model._meta.db_table
    fields = list(model._meta.concrete_fields)
    columns = ", ".join(f"{quote(table)}.{quote(str(f.column))}" for f in fields)
    converters = []
    for index, field in enumerate(fields):
        expression = field.get_col(table)
        funcs = connection.ops.get_db_converters(expression) + expression.get_db_converters(connection)
        if funcs:
            converters.append((index, funcs, expression))
    return columns, [f.attname for f in fields], converters


def insert_rows(instances: Sequence[Model]) -> None:
    """What `Model.objects.bulk_create(instances)` does for a hot path's new rows, as one
    `INSERT … VALUES (…), (…) RETURNING <pk>` built once per model and row count: each
    instance gets its pk and is saved (auto_now(_add) fields set, as bulk_create sets
    them). The ORM compiling the INSERT cost more CPU than running it (issue 16).
    Models with database defaults or generated columns are refused (bulk_create reads
    those back; this does not)."""
    if not instances:
        return
    model = type(instances[0])
    sql, fields = _insert_rows_sql(model, len(instances))
    values: list[Any] = []
    for obj in instances:
        if type(obj) is not model:
            raise TypeError(f"insert_rows: {type(obj).__name__} among {model.__name__} rows")
        obj._prepare_related_fields_for_save(operation_name="insert_rows")  # type: ignore[attr-defined]  # bulk_create calls it too
        values.extend(f.get_db_prep_save(f.pre_save(obj, add=True), connection) for f in fields)
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        rows = cursor.fetchall()
    # PostgreSQL returns a multi-row INSERT's rows in VALUES order (bulk_create relies on it too).
    for obj, (pk,) in zip(instances, rows, strict=True):
        obj.pk = pk
        obj._state.adding = False
        obj._state.db = connection.alias


def insert_values(instances: Sequence[Model]) -> tuple[str, list[Any]]:
    """`INSERT INTO <table> (<columns>) VALUES (…), (…)` for new rows of one model and
    its parameters, values prepared as insert_rows prepares them, with no RETURNING:
    for a data-modifying CTE inside a larger statement (the instances get no pk)."""
    model = type(instances[0])
    sql, fields = _insert_rows_sql(model, len(instances))
    values: list[Any] = []
    for obj in instances:
        if type(obj) is not model:
            raise TypeError(f"insert_values: {type(obj).__name__} among {model.__name__} rows")
        obj._prepare_related_fields_for_save(operation_name="insert_values")  # type: ignore[attr-defined]
        values.extend(f.get_db_prep_save(f.pre_save(obj, add=True), connection) for f in fields)
    return sql[: sql.rindex(" RETURNING ")], values


@functools.lru_cache(maxsize=256)
def _insert_rows_sql(model: type[Model], count: int) -> tuple[str, list[Field]]:
    quote = connection.ops.quote_name
    pk = model._meta.pk
    assert pk is not None
    fields: list[Field] = []
    for f in model._meta.concrete_fields:
        if getattr(f, "generated", False) or f.db_default is not NOT_PROVIDED:
            raise ValueError(f"insert_rows: {model.__name__}.{f.name} is filled by the database")
        if f is pk and getattr(f, "db_returning", False):
            continue  # serial: the database numbers the rows
        fields.append(f)
    row = f"({', '.join(['%s'] * len(fields))})"
    sql = (
        f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(quote(str(f.column)) for f in fields)}) "  # noqa: S608
        f"VALUES {', '.join([row] * count)} RETURNING {quote(str(pk.column))}"
    )
    return sql, fields


def update_fields(instance: Model, names: Sequence[str]) -> None:
    """What `instance.save(update_fields=names)` does, as `UPDATE … SET … WHERE <pk> = %s`
    built once per model and field list (auto_now fields set by their pre_save, as
    save sets them; no pre_save/post_save signals: the hot path's models have no
    receivers). Like save, it fails when no row was updated."""
    model = type(instance)
    sql, fields = _update_fields_sql(model, tuple(names))
    values: list[Any] = [f.get_db_prep_save(f.pre_save(instance, add=False), connection) for f in fields]
    values.append(instance.pk)
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        if cursor.rowcount != 1:
            raise DatabaseError("Save with update_fields did not affect any rows.")


@functools.lru_cache(maxsize=256)
def _update_fields_sql(model: type[Model], names: tuple[str, ...]) -> tuple[str, list[Field]]:
    quote = connection.ops.quote_name
    pk = model._meta.pk
    assert pk is not None
    fields = [concrete_field(model, name) for name in names]
    sets = ", ".join(f"{quote(str(f.column))} = %s" for f in fields)
    sql = f"UPDATE {quote(model._meta.db_table)} SET {sets} WHERE {quote(str(pk.column))} = %s"  # noqa: S608
    return sql, fields


# --- Statements built once, prepared on each connection ------------------------------------


class _PreparingCursor(ServerBindingCursor):
    """psycopg's server-side binding cursor that prepares every statement it runs on the
    connection (psycopg names it, keeps up to `prepared_max` per connection, and drops
    them when the connection rolls back). Only for statements whose text
    is built once per process: any other text would fill the connection with
    statements run once."""

    logged = False  # under Django's query log (DEBUG, CaptureQueriesContext)

    def execute(self, query: Any, params: Any = None, *, prepare: bool | None = None, binary: Any = None):
        super().execute(query, params, prepare=True, binary=binary)
        if self.logged:
            # psycopg keeps no text for a prepared statement's execution; the log's is
            # the statement as PostgreSQL has it ($1, $2, … for the parameters).
            self._query = self._convert_query(query, params)
        return self


def fetchall_prepared(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    """Run a statement built once per process (`prepared`, `parts_sql`) through Django's
    cursor wrapper (its error translation, execute_wrappers and query log) as a prepared
    statement of this connection, and return its rows: PostgreSQL plans it at its first
    executions and then keeps a generic plan, where Django's client-side binding sends
    new text that is planned every time (an order's case file spent ≈ 2 ms of its
    ≈ 20 ms planning its combined reads: issue 16). With prepared statements off
    (`DATABASE_PREPARED_STATEMENTS=false`, for a pooler in transaction mode) psycopg
    prepares nothing and this is one statement bound on the server. psycopg forgets
    its names when the connection rolls back (Django's rollback); PostgreSQL keeps
    prepared statements through any rollback, so one prepared in a transaction rolled
    back to a savepoint stays valid. Nothing may deallocate them behind psycopg's back
    (a pooler's DISCARD ALL: the setting is off there)."""
    db = connection
    db.close_if_health_check_failed()
    db.ensure_connection()
    loader = db.connection.adapters.get_loader(_TIMESTAMPTZ, Format.TEXT)
    if db.timezone != getattr(loader, "timezone", None):
        # Django gives such a cursor its own time zone (create_cursor); never the case
        # with USE_TZ, whose connections are made in the zone they read in.
        with db.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()
    with db.wrap_database_errors:
        raw = _PreparingCursor(db.connection)
        raw.logged = db.queries_logged
        db.validate_thread_sharing()
    # psycopg prepares only while the connection has a threshold; Django leaves it None.
    # Set only around this execution: with one set, psycopg also keeps count of every
    # other statement's text (≈ 6 µs of CPU each, on the accepting path too).
    db.connection.prepare_threshold = _NEVER_BY_COUNT if settings.DATABASE_PREPARED_STATEMENTS else None
    try:
        with (CursorDebugWrapper if db.queries_logged else CursorWrapper)(raw, db) as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()
    finally:
        db.connection.prepare_threshold = None


# Executions before psycopg prepares a statement by itself: never (core.sql asks).
_NEVER_BY_COUNT = 2**31 - 1
_TIMESTAMPTZ = pg_types["timestamptz"].oid


# --- ORM statements compiled once per process ------------------------------------------


_SLOT_BASE = datetime.datetime(1901, 1, 1, tzinfo=datetime.UTC)
_SLOT_INT = -(2**62)  # far below any id, amount or count a row holds
_SLOT_STR = "\x00slot:"  # NUL: no text column holds it (PostgreSQL refuses NUL in text)


def slot(n: int) -> datetime.datetime:
    """The stand-in for a prepared statement's n-th parameter when it is a datetime (a
    moment no row holds: 1901-01-01 plus n microseconds). `prepared()`'s builder filters
    on it where the call will pass its own value (a "since before", a "now")."""
    return _SLOT_BASE + datetime.timedelta(microseconds=n)


def int_slot(n: int) -> int:
    """The stand-in for the n-th parameter when it is an integer (an id)."""
    return _SLOT_INT + n


def str_slot(n: int) -> str:
    """The stand-in for the n-th parameter when it is text (an e-mail)."""
    return f"{_SLOT_STR}{n}"


def _slot_number(param: Any) -> int | None:
    """Which slot a compiled parameter stands for, or None (a value of the query's own)."""
    if isinstance(param, datetime.datetime):
        if param.tzinfo is not None and param.year == _SLOT_BASE.year:
            return (param - _SLOT_BASE) // datetime.timedelta(microseconds=1)
    elif isinstance(param, int) and not isinstance(param, bool):  # psycopg's Int8 too
        if _SLOT_INT <= param < _SLOT_INT + 2**20:
            return param - _SLOT_INT
    elif isinstance(param, str) and param.startswith(_SLOT_STR):
        return int(param[len(_SLOT_STR) :])
    return None


@dataclass(frozen=True)
class Prepared:
    """An ORM query's SQL, compiled once: its own values written into the text as
    literals, a %s for each slot."""

    sql: str
    slots: tuple[int, ...]  # the slot number of each %s, in the text's order
    names: tuple[str, ...]  # the result's columns (a values() query's keys)
    converters: tuple[tuple[int, tuple[Any, ...], Any], ...]  # (column, funcs, expression)

    def rows(self, *values: Any) -> list[tuple[Any, ...]]:
        """Run the statement with `values` in the slots; its rows, converted as the
        ORM converts them."""
        rows = fetchall_prepared(self.sql, self._params(values))
        if not self.converters:
            return rows
        converted = []
        for row in rows:
            values_ = list(row)
            for index, funcs, expression in self.converters:
                value = values_[index]
                for func in funcs:
                    value = func(value, expression, connection)
                values_[index] = value
            converted.append(tuple(values_))
        return converted

    def instances(self, model: type[M], *values: Any) -> list[M]:
        """rows() of a query over `model`'s own columns (no values(), no annotations)
        as its instances, what iterating the QuerySet would have returned."""
        attnames = [f.attname for f in model._meta.concrete_fields]
        rows = self.rows(*values)
        if rows and len(rows[0]) != len(attnames):
            raise TypeError(f"{len(rows[0])} columns, {model.__name__} has {len(attnames)}")
        return [model.from_db(connection.alias, attnames, list(row)) for row in rows]

    def dicts(self, *values: Any) -> list[dict[str, Any]]:
        """rows() as dicts keyed by the query's names (what values() would return)."""
        names = self.names
        return [dict(zip(names, row, strict=True)) for row in self.rows(*values)]

    def count(self, *values: Any) -> int:
        """How many rows the statement returns, counted by PostgreSQL (what the
        QuerySet's count() says: of a sliced query, at most its slice)."""
        return int(fetchall_prepared(self._count_sql, self._params(values))[0][0])

    def _params(self, values: Sequence[Any]) -> list[Any]:
        """The statement's parameters: `values` (slot 0, 1, …) in the text's order."""
        if len(values) != len(self.slots):
            raise TypeError(f"{len(self.slots)} slot value(s) expected, {len(values)} given")
        return [values[n] for n in self.slots]

    @functools.cached_property
    def _count_sql(self) -> str:
        return f"SELECT COUNT(*) FROM ({self.sql}) AS counted"  # noqa: S608 - the ORM's own SQL


_prepared: dict[Hashable, Prepared] = {}


def prepared(key: Hashable, build: Callable[[], Any], *, slots: int = 0) -> Prepared:
    """The statement of the QuerySet `build()` returns, compiled once per process under
    `key`: `key` must name everything the query depends on except its slots (`build`
    passes `slot(n)`, `int_slot(n)` or `str_slot(n)` — n = 0, 1, … — where the call's
    datetimes, integers and texts go; each n must appear exactly once among the
    parameters). For reads drawn at every request whose ORM compilation costs more CPU
    than running them (the back office's overview, waiting page and an order's case
    file: issue 16); the query is the ORM's, so it stays the one its tests read."""
    hit = _prepared.get(key)
    if hit is not None:
        return hit
    queryset = build()
    query = queryset.query
    compiler = query.get_compiler(using=queryset.db)
    sql, params = compiler.as_sql()
    marks = {i: n for i, p in enumerate(params) if (n := _slot_number(p)) is not None}
    for n in range(slots):
        found = [i for i, m in marks.items() if m == n]
        if len(found) != 1:
            raise ValueError(f"prepared({key!r}): slot({n}) is {len(found)} times among the parameters")
    if len(marks) != slots:
        raise ValueError(f"prepared({key!r}): {len(marks)} slots among the parameters, {slots} declared")
    sql = _literals_but_slots(sql, params, marks)
    fields = [s[0] for s in compiler.select[: compiler.col_count]]
    converters = tuple(
        (index, tuple(funcs), expression)
        for index, (funcs, expression) in compiler.get_converters(fields).items()
    )
    # A values() query's keys, in the order of its columns (as ValuesIterable names them).
    if query.selected:
        names: tuple[str, ...] = tuple(query.selected)
    else:
        names = (*query.extra_select, *query.values_select, *query.annotation_select)
    order = tuple(marks[i] for i in sorted(marks))  # the slots in the text's order
    hit = _prepared[key] = Prepared(sql, order, names, converters)
    return hit


def _literals_but_slots(sql: str, params: Sequence[Any], marks: dict[int, int]) -> str:
    """The ORM's SQL with its own values written in as literals (quoted by psycopg, as
    Django's client-side binding sends them) and a %s left for each slot. A prepared
    statement is planned once for every call (a generic plan): a value the query
    fixes — the states a partial index is built on, say — must be in its text for the
    planner to use that index; as a parameter it could be anything."""
    marker = f"slot_{uuid.uuid4().hex}"
    connection.ensure_connection()
    with ClientCursor(connection.connection) as cursor:  # what Django's compose_sql does
        text = cursor.mogrify(sql, [marker if i in marks else p for i, p in enumerate(params)])
    quoted = f"'{marker}'"
    if text.count(quoted) != len(marks):
        raise ValueError(f"{len(marks)} slots, {text.count(quoted)} found in the statement")
    return text.replace("%", "%%").replace(quoted, "%s")


def prepared_forget() -> None:
    """Drop every compiled statement (tests)."""
    _prepared.clear()


# --- Several sources of one app in one statement -------------------------------------------------


@dataclass(frozen=True)
class Part:
    """One source of a combined read (`parts_sql`): rows of `model` selected as
    `SELECT <the model's columns>, <extra> <tail> ORDER BY <order> [LIMIT <limit>]`.
    `tail` is the FROM clause (the model's table under its own name, joins allowed) and
    WHERE, with %s parameters; `order` the ORDER BY the separate read would say;
    `extra`, select expressions read after the model's columns (a joined row's value)."""

    model: type[Model]
    tail: str
    order: str
    extra: tuple[str, ...] = ()
    limit: int | None = None


def parts_sql(parts: Sequence[Part]) -> str:
    """Several parts as one statement: each part a subquery numbering its rows in its own
    order, the subqueries FULL JOINed ON false (every row of each, side by side with NULL
    for the others' columns: one result set, each column its own type, so rows come back
    with the ORM's types), ordered part by part. Built once per shape by its caller: the
    ORM compiling a statement per source cost more CPU than the statements themselves
    (an order's case file, issue 16)."""
    subs = []
    for n, part in enumerate(parts):
        columns = ", ".join((select_columns(part.model), *part.extra))
        limit = f" LIMIT {int(part.limit)}" if part.limit is not None else ""
        subs.append(
            f"(SELECT row_number() OVER (ORDER BY {part.order}) AS n, {columns} {part.tail}"
            f" ORDER BY {part.order}{limit}) AS p{n}"
        )
    joined = subs[0] + "".join(f" FULL JOIN {sub} ON false" for sub in subs[1:])
    return f"SELECT * FROM {joined} ORDER BY {', '.join(f'p{n}.n' for n in range(len(parts)))}"  # noqa: S608


def read_parts(sql: str, params: Sequence[Any], parts: Sequence[Part]) -> list[list[tuple[Any, tuple]]]:
    """Run `parts_sql(parts)` (one round trip): per part, its rows in its order as
    (model instance, as `Model.objects` would return it; the extra values)."""
    layout = []
    start = 0
    for part in parts:
        width = len(_row_reader(part.model)[1])
        layout.append((start, width, len(part.extra), part.model))
        start += 1 + width + len(part.extra)
    out: list[list[tuple[Any, tuple]]] = [[] for _ in parts]
    rows = fetchall_prepared(sql, list(params))
    for row in rows:
        for index, (begin, width, extras, model) in enumerate(layout):
            if row[begin] is not None:  # this part's row number: the row is this part's
                values = row[begin + 1 : begin + 1 + width]
                out[index].append(
                    (
                        instance_from_row(model, values),
                        tuple(row[begin + 1 + width : begin + 1 + width + extras]),
                    )
                )
                break
    return out
