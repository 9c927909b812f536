"""Rows written in bulk by the background import, with statements built directly.

`bulk_create`, `bulk_update` and django-simple-history's bulk helpers build a model instance
per history row and compile every value of every row as an expression (`bulk_update`: a CASE
per column); for a 100,000-row import that compilation cost more than the writing. Here each
value goes through its field's `get_db_prep_save`, as the ORM does, and the statement is
written once per chunk: multi-row INSERTs with RETURNING for the new rows' ids (SQLite 3.35+
and PostgreSQL both have it, and Django's own `bulk_create` relies on the ids coming back in
the order of the rows), one UPDATE run with `executemany` for the changed rows.

Nothing here sends signals or calls `save()`: the caller (contacts.services) decides what that
means for pushes and version counters.
"""

import datetime

from django.db import DEFAULT_DB_ALIAS, connections

MAX_PARAMS = 15_000  # values per statement: well under SQLite's 32,766 and PostgreSQL's 65,535


def _connection():
    """The connection itself, not `django.db.connection`'s proxy: each attribute read through
    the proxy is a context-local lookup, and `get_db_prep_save` reads it for every value."""
    return connections[DEFAULT_DB_ALIAS]


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
    with connection.cursor() as cursor:
        for start in range(0, len(objects), batch):
            part = objects[start : start + batch]
            params = [
                f.get_db_prep_save(f.pre_save(obj, add=True), connection)
                for obj in part
                for f in fields
            ]
            cursor.execute(head + ", ".join([row] * len(part)) + tail, params)
            for obj, (pk,) in zip(part, cursor.fetchall(), strict=True):
                obj.pk = pk
                obj._state.adding = False
                obj._state.db = connection.alias


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
    created, "~" for changed), the date, the author, no change reason."""
    if not objects:
        return
    connection = _connection()
    history = model.history.model
    tracked = {f.attname for f in history.tracked_fields}
    extra = {
        "history_date": now,
        "history_change_reason": None,
        "history_type": history_type,
        "history_user_id": user_id,
    }
    fields = [f for f in history._meta.concrete_fields if not f.primary_key]
    quote = connection.ops.quote_name
    head = "INSERT INTO {} ({}) VALUES ".format(
        quote(history._meta.db_table), ", ".join(quote(f.column) for f in fields)
    )
    row = "({})".format(", ".join(["%s"] * len(fields)))
    batch = max(1, min(500, MAX_PARAMS // len(fields)))
    with connection.cursor() as cursor:
        for start in range(0, len(objects), batch):
            part = objects[start : start + batch]
            params = [
                f.get_db_prep_save(
                    getattr(obj, f.attname) if f.attname in tracked else extra[f.attname],
                    connection,
                )
                for obj in part
                for f in fields
            ]
            cursor.execute(head + ", ".join([row] * len(part)), params)


def rows_update(*, model, objects: list, attnames: list[str], increment: str = "") -> None:
    """UPDATE the `attnames` columns of each object (by pk) to its values, in one statement
    run for every object; `increment` names a counter column raised by one in the same
    statement (in SQL, so a change made meanwhile is not lost)."""
    if not objects:
        return
    connection = _connection()
    fields = [model._meta.get_field(name) for name in attnames]
    quote = connection.ops.quote_name
    sets = [f"{quote(f.column)} = %s" for f in fields]
    if increment:
        column = quote(model._meta.get_field(increment).column)
        sets.append(f"{column} = {column} + 1")
    sql = "UPDATE {} SET {} WHERE {} = %s".format(
        quote(model._meta.db_table), ", ".join(sets), quote(model._meta.pk.column)
    )
    rows = [
        [f.get_db_prep_save(getattr(obj, f.attname), connection) for f in fields] + [obj.pk]
        for obj in objects
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)
