"""Rows written in bulk by the background import, with statements built directly.

`bulk_create`, `bulk_update` and django-simple-history's bulk helpers build a model instance
per history row and compile every value of every row as an expression (`bulk_update`: a CASE
per column); for a 100,000-row import that compilation cost more than the writing. Here each
value is prepared as the ORM's `get_db_prep_save` prepares it (`_preparers`: a plain string,
number or boolean is passed as it is, without the field's per-value round of conversions,
which took a quarter of a large import's write), and the statement is written once per
chunk: multi-row INSERTs with RETURNING for the new rows' ids (SQLite 3.35+ and PostgreSQL
both have it, and Django's own `bulk_create` relies on the ids coming back in the order of
the rows); the changed rows' UPDATE as one `UPDATE … FROM (VALUES …)` per 500 rows on
PostgreSQL (as `sync.engine` writes sync states), one prepared UPDATE run with `executemany`
on SQLite (in-process: no round trip per row).

Nothing here sends signals or calls `save()`: the caller (contacts.services) decides what that
means for pushes and version counters.
"""

import datetime
import operator
from collections.abc import Callable

from django.db import DEFAULT_DB_ALIAS, connections, models
from django.utils import timezone

MAX_PARAMS = 15_000  # values per statement: well under SQLite's 32,766 and PostgreSQL's 65,535


def _connection():
    """The connection itself, not `django.db.connection`'s proxy: each attribute read through
    the proxy is a context-local lookup, and `get_db_prep_save` reads it for every value."""
    return connections[DEFAULT_DB_ALIAS]


# Fields whose `get_db_prep_save` returns a value of these exact types unchanged (CharField:
# `str(value)`, IntegerField: `int(value)`, BooleanField: `bool(value)`, NULL as NULL).
PLAIN_FIELDS = (models.CharField, models.TextField, models.IntegerField, models.BooleanField)
PLAIN_TYPES = frozenset({str, int, bool, type(None)})


def _preparers(fields: list, connection) -> list[Callable]:
    """For each field, the function that turns an attribute into its database value. A plain
    string, number, boolean or NULL in a plain field goes as it is; an aware datetime through
    the backend's adapter alone (`DateTimeField.get_db_prep_save` ends there after checks an
    aware value passes); NULL as NULL, except in JSON; anything else (JSON, decimals, dates,
    IP addresses, an unexpected type) through `get_db_prep_save`, as the ORM does. Foreign
    keys are their target's integer column."""
    preparers = []
    for f in fields:
        target = f.target_field if f.is_relation else f

        def general(value, f=f):
            return f.get_db_prep_save(value, connection)

        if isinstance(target, PLAIN_FIELDS):

            def prepare(value, general=general):
                return value if type(value) in PLAIN_TYPES else general(value)

        elif isinstance(target, models.DateTimeField):
            # The last value and its adapted form: a chunk's rows share one `now` (the
            # ledger's occurred_at, the history's date), adapted once instead of per row.
            last: list = [None, None]

            def prepare(
                value, general=general, adapt=connection.ops.adapt_datetimefield_value, last=last
            ):
                if value is None:
                    return None
                if value is last[0]:
                    return last[1]
                if type(value) is datetime.datetime and value.tzinfo is not None:
                    last[:] = value, adapt(value)  # the value kept: its id is not reused
                    return last[1]
                return general(value)

        elif isinstance(target, models.JSONField):
            prepare = general  # None is JSON's null or SQL's NULL: the field decides
        else:

            def prepare(value, general=general):
                return None if value is None else general(value)

        preparers.append(prepare)
    return preparers


def rows_insert(*, model, objects: list) -> None:
    """INSERT `objects` (their pk unset) and set each one's pk from the database.

    Fields with `pre_save` (auto_now, auto_now_add) are filled on the objects as the ORM
    fills them on a save."""
    if not objects:
        return
    connection = _connection()
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    quote = connection.ops.quote_name
    head = "INSERT INTO {} ({}) VALUES ".format(
        quote(model._meta.db_table), ", ".join(quote(f.column) for f in fields)
    )
    tail = f" RETURNING {quote(model._meta.pk.column)}"
    row = "({})".format(", ".join(["%s"] * len(fields)))
    batch = max(1, min(500, MAX_PARAMS // len(fields)))
    # `pre_save` only where a field has its own (auto_now dates): the others' is the attribute
    read = [
        (lambda obj, f=f: f.pre_save(obj, add=True))
        if type(f).pre_save is not models.Field.pre_save
        else operator.attrgetter(f.attname)
        for f in fields
    ]
    prepared = list(zip(read, _preparers(fields, connection), strict=True))
    with connection.cursor() as cursor:
        for start in range(0, len(objects), batch):
            part = objects[start : start + batch]
            params = [prepare(get(obj)) for obj in part for get, prepare in prepared]
            cursor.execute(head + ", ".join([row] * len(part)) + tail, params)
            for obj, (pk,) in zip(part, cursor.fetchall(), strict=True):
                obj.pk = pk
                obj._state.adding = False
                obj._state.db = connection.alias


def values_insert(*, model, rows: list[dict]) -> list[int]:
    """INSERT one row per dict of attribute values (each dict with the same keys) and return
    the new rows' pks, in order. No model instance is built: for the import's ledger entries
    and memberships, building one per row cost more than writing it. A field the dicts leave
    out gets its default, or, for an auto_now(_add) date, the time of this call, as a save
    would fill it."""
    if not rows:
        return []
    connection = _connection()
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    now = timezone.now()
    constants = {}
    for f in fields:
        if f.attname in rows[0]:
            continue
        if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False):
            constants[f.attname] = now
        elif f.has_default() and callable(
            f.default
        ):  # one value for every row would be wrong (a uuid)
            raise ValueError(f"{model.__name__}.{f.attname} has a callable default: give it")
        else:
            constants[f.attname] = f.get_default()
    return _insert(
        connection,
        table=model._meta.db_table,
        fields=fields,
        rows=rows,
        get=dict.__getitem__,
        constants=constants,
        returning=model._meta.pk.column,
    )


def history_rows_insert(
    *,
    model,
    objects: list,
    history_type: str,
    user_id: int | None,
    now: datetime.datetime,
) -> None:
    """One django-simple-history record per object (saved, with its pk), as its
    `bulk_history_create` writes them: the tracked fields' values, `history_type` ("+" for
    created, "~" for changed), the date, the author, no change reason. `objects` are model
    instances, or dicts of their tracked fields' values by attname (`values_insert`'s rows
    with their pks)."""
    if not objects:
        return
    history = model.history.model
    _insert(
        _connection(),
        table=history._meta.db_table,
        fields=[f for f in history._meta.concrete_fields if not f.primary_key],
        rows=objects,
        get=dict.__getitem__ if isinstance(objects[0], dict) else getattr,
        constants={
            "history_date": now,
            "history_change_reason": None,
            "history_type": history_type,
            "history_user_id": user_id,
        },
    )


def _insert(connection, *, table, fields, rows, get, constants, returning="") -> list[int]:
    """Multi-row INSERTs of `rows` into `table`: a field named in `constants` takes that
    value on every row (prepared once), the others `get(row, attname)`, each prepared as
    `_preparers` says. Returns the `returning` column's values, in order, when it is named."""
    quote = connection.ops.quote_name
    head = "INSERT INTO {} ({}) VALUES ".format(
        quote(table), ", ".join(quote(f.column) for f in fields)
    )
    tail = f" RETURNING {quote(returning)}" if returning else ""
    row = "({})".format(", ".join(["%s"] * len(fields)))
    batch = max(1, min(500, MAX_PARAMS // len(fields)))
    # per column: (whether it is a constant, its prepared value, or its attname and preparer)
    plan = [
        (True, prepare(constants[f.attname]), None, None)
        if f.attname in constants
        else (False, None, f.attname, prepare)
        for f, prepare in zip(fields, _preparers(fields, connection), strict=True)
    ]
    returned: list[int] = []
    with connection.cursor() as cursor:
        for start in range(0, len(rows), batch):
            part = rows[start : start + batch]
            params = [
                value if constant else prepare(get(obj, name))
                for obj in part
                for constant, value, name, prepare in plan
            ]
            cursor.execute(head + ", ".join([row] * len(part)) + tail, params)
            if returning:
                returned.extend(pk for (pk,) in cursor.fetchall())
    return returned


def rows_update(*, model, objects: list, attnames: list[str], increment: str = "") -> None:
    """UPDATE the `attnames` columns of each object (by pk) to its values; `increment` names a
    counter column raised by one in the same statement (in SQL, so a change made meanwhile is
    not lost). PostgreSQL: one `UPDATE … FROM (VALUES …)` per batch of rows; elsewhere one
    prepared statement run for every object."""
    if not objects:
        return
    connection = _connection()
    fields = [model._meta.get_field(name) for name in attnames]
    preparers = _preparers(fields, connection)
    rows = [
        [prepare(getattr(obj, f.attname)) for f, prepare in zip(fields, preparers, strict=True)]
        + [obj.pk]
        for obj in objects
    ]
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    pk = quote(model._meta.pk.column)
    raise_counter = []
    if increment:
        column = quote(model._meta.get_field(increment).column)
        raise_counter = [f"{column} = {table}.{column} + 1"]
    with connection.cursor() as cursor:
        if connection.vendor != "postgresql":
            sets = [f"{quote(f.column)} = %s" for f in fields] + raise_counter
            cursor.executemany(f"UPDATE {table} SET {', '.join(sets)} WHERE {pk} = %s", rows)
            return
        # VALUES rows carry no column types: each value is cast to its column's type.
        names = [f"c{i}" for i in range(len(fields))]
        sets = [
            f"{quote(f.column)} = v.{name}::{f.cast_db_type(connection)}"
            for f, name in zip(fields, names, strict=True)
        ] + raise_counter
        pk_cast = model._meta.pk.cast_db_type(connection)
        row = "({})".format(", ".join(["%s"] * (len(fields) + 1)))
        batch = max(1, min(500, MAX_PARAMS // (len(fields) + 1)))
        for start in range(0, len(rows), batch):
            part = rows[start : start + batch]
            values = ", ".join([row] * len(part))
            cursor.execute(
                f"UPDATE {table} SET {', '.join(sets)} FROM (VALUES {values}) "
                f"AS v({', '.join(names)}, pk) WHERE {table}.{pk} = v.pk::{pk_cast}",
                [value for r in part for value in r],
            )
