"""Reads compiled once per thread and run again with a new value: for the API's token path,
where building a query's SQL costs ten times running it (docs/performance.md).

A CompiledRead holds a values_list query with one lookup value. The first use in a
thread (each thread has its own database connection) compiles it with a placeholder;
later uses put the real value in the placeholder's place, run the SQL and convert the
row with the compiler's own converters, exactly as the ORM would (UUIDs, dates, booleans,
encrypted fields), so the answer is the one the plain queryset gives.
"""

import threading
import uuid
from collections.abc import Callable
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Field, Model, QuerySet

PLACEHOLDER = uuid.UUID("00000000-0000-4000-8000-00000000c0de")


class CompiledRead:
    def __init__(self, build: Callable[[Any], QuerySet], *, field: Field, fields: tuple):
        """`build(value)` is the values_list(*fields) query for one lookup value of
        `field`; its SQL must take the value once."""
        self._build = build
        self._field = field
        self._fields = fields
        self._local = threading.local()

    def _compiled(self, connection):
        cached = getattr(self._local, "compiled", None)
        if cached is not None and cached[0] is connection:
            return cached
        queryset = self._build(PLACEHOLDER)
        if tuple(queryset.query.values_select) != self._fields:
            raise ValueError(f"{queryset.query} does not select {self._fields}")
        compiler = queryset.query.get_compiler(connection=connection)
        sql, params = compiler.as_sql()
        params = list(params)
        prepared = self._field.get_db_prep_value(PLACEHOLDER, connection, prepared=False)
        if params.count(prepared) != 1:
            raise ValueError(f"{sql} does not take its lookup value exactly once")
        selected = [s[0] for s in compiler.select[: compiler.col_count]]
        if compiler.has_composite_fields(selected):
            raise ValueError(f"{queryset.query} selects a composite field")
        # What results_iter would look up for every row: the backend's and the fields'
        # converters (dates, UUIDs, decryption), found once here.
        converters = compiler.get_converters(selected)
        at = params.index(prepared)
        self._local.compiled = (connection, compiler, converters, sql, params, at)
        return self._local.compiled

    def get(self, value) -> tuple | None:
        """The one row for this value (as values_list gives it), or None."""
        connection = connections[DEFAULT_DB_ALIAS]
        _, compiler, converters, sql, params, at = self._compiled(connection)
        params = [*params]
        params[at] = self._field.get_db_prep_value(value, connection, prepared=False)
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchmany(2)
        if len(rows) != 1:
            return None
        if converters:
            rows = compiler.apply_converters(rows, converters)
        return tuple(next(iter(rows)))


def instance(model: type[Model], names: tuple, values) -> Any:
    """A model instance from some of its columns (attnames), as the ORM builds one: the
    other fields are deferred (read on access)."""
    given = dict(zip(names, values, strict=True))
    fields = [f.attname for f in model._meta.concrete_fields if f.attname in given]
    if len(fields) != len(given):
        raise ValueError(f"{model.__name__} has no field {set(given) - set(fields)}")
    return model.from_db(DEFAULT_DB_ALIAS, fields, [given[name] for name in fields])


class CompiledInsert:
    """An INSERT of one row compiled once per thread and run again with new values: for
    writes on the API's hot path (the audit event of every use of a CI job's ID token),
    where the ORM's create() builds and compiles the same statement every time.

    The values go through the compiler's own preparation (pre_save, then each field's
    get_db_prep_save: UUIDs, dates, JSON, encryption), so the row is the one create()
    writes; nothing is read back (no RETURNING), so the model needs its primary key set
    before (a UUID default) or no use of it after.
    """

    def __init__(self, model: type[Model]):
        auto = model._meta.auto_field  # the database numbers it, as create() lets it
        self._model = model
        self._fields = [
            f for f in model._meta.concrete_fields if not f.generated and f is not auto
        ]
        self._local = threading.local()

    def _compiled(self, connection, obj: Model):
        cached = getattr(self._local, "compiled", None)
        if cached is not None and cached[0] is connection:
            return cached
        from django.db.models.sql import InsertQuery

        query = InsertQuery(self._model)
        query.insert_values(self._fields, [obj], raw=False)
        compiler = query.get_compiler(connection=connection)
        ((sql, _params),) = compiler.as_sql()
        self._local.compiled = (connection, compiler, sql)
        return self._local.compiled

    def insert(self, obj: Model) -> None:
        """Write `obj` as create() would (IntegrityError and all), and mark it saved."""
        if not isinstance(obj, self._model):
            raise TypeError(f"{obj!r} is not a {self._model.__name__}")
        connection = connections[DEFAULT_DB_ALIAS]
        _, compiler, sql = self._compiled(connection, obj)
        params = [
            compiler.prepare_value(field, compiler.pre_save_val(field, obj))
            for field in self._fields
        ]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
        obj._state.adding = False
        obj._state.db = DEFAULT_DB_ALIAS
