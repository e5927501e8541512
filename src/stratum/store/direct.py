"""Prebuilt statements run straight on the driver, inside the caller's SQLAlchemy transaction.

SQLAlchemy caches a statement's compiled form, yet each execution still costs tens of
microseconds of execution-context, parameter and result set-up: more than SQLite needs for an
indexed lookup or a one-row insert. The handful of statements on the request and engine hot paths
(StartPipelineExecution, DescribePipeline, a step's transitions) are compiled here once per dialect
and sent to the DBAPI cursor of the connection the caller already holds. Values go through the
column types' own bind and result processors, so what is stored and read back is exactly what
SQLAlchemy would store and read back (a test holds both paths to that).

Only plain statements qualify: every bind parameter is a named ``bindparam`` (or a literal in the
statement), nothing is expanded at execution time (no IN lists) and no Python-side column default
is needed.
"""

from __future__ import annotations

import threading
from collections import namedtuple
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import Executable, sqltypes
from sqlalchemy.sql.elements import BindParameter

Processor = Callable[[Any], Any]


class _Plan:
    """One statement compiled for one dialect."""

    __slots__ = ("sql", "positional", "names", "steps", "parameters", "row_type", "results")

    def __init__(self, stmt: Executable, dialect: Dialect) -> None:
        compiled = stmt.compile(dialect=dialect)
        for bind in compiled.binds.values():
            if bind.expanding:
                # IN lists are expanded per execution: write status IN (...) as ORs of ==.
                raise ValueError(f"expanding parameter {bind.key!r} cannot run directly")
        if compiled.positional and compiled.positiontup is None:
            raise ValueError("statement without positional parameters on a positional dialect")
        self.sql = compiled.string
        self.positional = bool(compiled.positional)
        self.names: tuple[str, ...] = tuple(compiled.positiontup or compiled.binds)
        # Per parameter, in order: (name, bind processor, None), or (None, None, value) for a value
        # the statement itself carries (a literal such as status == 'Executing').
        steps: list[tuple[str | None, Processor | None, Any]] = []
        for name in self.names:
            bind: BindParameter[Any] = compiled.binds[name]
            processor = _bind_processor(bind.type, dialect)
            if bind.required:
                steps.append((name, processor, None))
            else:
                value = bind.effective_value
                steps.append((None, None, processor(value) if processor is not None else value))
        self.steps = tuple(steps)
        self.parameters = _parameter_builder(self.steps, self.names, self.positional)
        columns = list(getattr(stmt, "selected_columns", ()))
        self.row_type: Any = None
        self.results: tuple[tuple[int, Processor], ...] = ()
        if columns:
            keys = [c.key for c in columns]
            self.row_type = namedtuple("Row", keys)  # type: ignore[misc]  # noqa: PYI024
            processors = []
            for i, column in enumerate(columns):
                processor = column.type.dialect_impl(dialect).result_processor(dialect, None)
                if processor is not None:
                    processors.append((i, processor))
            self.results = tuple(processors)

    def row(self, raw: Any) -> Any:
        if not self.results:
            return self.row_type._make(raw)
        values = list(raw)
        for i, processor in self.results:
            values[i] = processor(values[i])
        return self.row_type._make(values)


def _bind_processor(type_: Any, dialect: Dialect) -> Processor | None:
    """The type's bind processor; for JSON on SQLite, one that hands documents and None straight
    to the serializer SQLAlchemy's would call (its processor first checks each value against its
    NULL sentinels: an execution insert binds thirteen JSON values). A test holds the stored text
    equal to SQLAlchemy's."""
    impl = type_.dialect_impl(dialect)
    processor = impl.bind_processor(dialect)
    serialize = getattr(dialect, "_json_serializer", None)
    if (processor is None or dialect.name != "sqlite" or not isinstance(impl, sqltypes.JSON)
            or serialize is None or impl._str_impl.bind_processor(dialect) is not None):
        return processor
    slow = processor
    null = slow(None)  # the text of JSON null, or None when the type stores None as SQL NULL

    def process(value: Any) -> Any:
        kind = type(value)
        if kind is dict or kind is list:
            return serialize(value)
        if value is None:
            return null
        return slow(value)
    process.inline = (serialize, null, slow)  # type: ignore[attr-defined]  # see _parameter_builder
    return process


def _parameter_builder(steps: tuple[tuple[str | None, Processor | None, Any], ...], names: tuple[str, ...],
                       positional: bool) -> Callable[[Mapping[str, Any]], Any]:
    """The function that turns a statement's named values into the driver's parameters.

    Generated once per plan, as dataclasses and namedtuple generate their methods: one expression
    per parameter instead of a loop that tests each step's kind on every execution (an execution
    insert has 27 parameters).
    """
    env: dict[str, Any] = {}
    parts: list[str] = []
    for i, (name, processor, literal) in enumerate(steps):
        if name is None:
            env[f"c{i}"] = literal
            parts.append(f"c{i}")
        elif processor is None:
            parts.append(f"p[{name!r}]")
        elif hasattr(processor, "inline"):
            # The JSON processor's test written into the expression: no call for the usual values.
            env[f"s{i}"], env[f"n{i}"], env[f"f{i}"] = processor.inline
            parts.append(f"(s{i}(v) if (t := type(v := p[{name!r}])) is dict or t is list "
                         f"else n{i} if v is None else f{i}(v))")
        else:
            env[f"f{i}"] = processor
            parts.append(f"f{i}(p[{name!r}])")
    if positional:
        body = f"({', '.join(parts)},)" if parts else "()"
    else:
        body = "{" + ", ".join(f"{n!r}: {part}" for n, part in zip(names, parts, strict=True)) + "}"
    exec(f"def parameters(p):\n    return {body}\n", env)  # noqa: S102 - built from the plan's own binds
    return env["parameters"]  # type: ignore[no-any-return]


class Statement:
    """A Core statement executed on the driver of a SQLAlchemy connection."""

    def __init__(self, stmt: Executable, variants: Mapping[str, Executable] | None = None) -> None:
        """``variants``: a dialect's own form of the statement (by dialect name), such as an
        INSERT ... ON CONFLICT DO NOTHING."""
        self.stmt = stmt
        self.variants = dict(variants or {})
        self._plans: dict[str, _Plan] = {}
        self._lock = threading.Lock()

    def _plan(self, dialect: Dialect) -> _Plan:
        plan = self._plans.get(dialect.name)
        if plan is None:
            with self._lock:
                plan = self._plans.get(dialect.name) or _Plan(self.variants.get(dialect.name, self.stmt), dialect)
                self._plans[dialect.name] = plan
        return plan

    def _run(self, conn: Connection, params: Mapping[str, Any]) -> tuple[_Plan, Any]:
        plan = self._plan(conn.dialect)
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        cursor.execute(plan.sql, plan.parameters(params))
        return plan, cursor

    def first(self, conn: Connection, params: Mapping[str, Any]) -> Any:
        """The first row (attribute access by column key) or None."""
        plan, cursor = self._run(conn, params)
        try:
            raw = cursor.fetchone()
        finally:
            cursor.close()
        return None if raw is None else plan.row(raw)

    def all(self, conn: Connection, params: Mapping[str, Any]) -> list[Any]:
        plan, cursor = self._run(conn, params)
        try:
            return [plan.row(raw) for raw in cursor.fetchall()]
        finally:
            cursor.close()

    def scalar(self, conn: Connection, params: Mapping[str, Any]) -> Any:
        row = self.first(conn, params)
        return None if row is None else row[0]

    def rowcount(self, conn: Connection, params: Mapping[str, Any]) -> int:
        """Run a data-changing statement; the number of rows it changed."""
        _plan, cursor = self._run(conn, params)
        try:
            return int(cursor.rowcount)
        finally:
            cursor.close()
