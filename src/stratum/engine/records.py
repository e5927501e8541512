"""The engine's reads and writes of execution and step rows.

Every step transition is its own short transaction. Statements are built once with bind
parameters: at a few transactions per step, building SQLAlchemy expressions would cost more than
the queries.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, Row, bindparam, case, insert, literal_column, select, text, update

from stratum.services.sagemaker.tables import ACTIVE_EXECUTION_STATUSES, ACTIVE_EXECUTIONS_SQL
from stratum.services.sagemaker.tables import sagemaker_pipeline_execution_steps as steps_t
from stratum.services.sagemaker.tables import sagemaker_pipeline_executions as executions_t
from stratum.services.sagemaker.tables import sagemaker_pipelines as pipelines_t
from stratum.store import direct
from stratum.store.claims import EXECUTION
from stratum.store.tables import stratum_claims as claims_t

ACTIVE_STEP_STATUSES = ("Starting", "Executing", "Stopping")


class ExecKey(NamedTuple):
    """An execution's primary key. A named tuple: it keys the engine's maps, hashed many times
    per step."""

    account_id: str
    region: str
    execution_id: str

    def params(self) -> dict[str, str]:
        # Bind names differ from column names: UPDATE reserves those for its SET clause.
        return {"k_account": self.account_id, "k_region": self.region, "k_execution": self.execution_id}


_EXEC_PK = ((executions_t.c.account_id == bindparam("k_account")) & (executions_t.c.region == bindparam("k_region"))
            & (executions_t.c.execution_id == bindparam("k_execution")))
_STEPS_OF = ((steps_t.c.account_id == bindparam("k_account")) & (steps_t.c.region == bindparam("k_region"))
             & (steps_t.c.execution_id == bindparam("k_execution")))
_STEP_PK = _STEPS_OF & (steps_t.c.seq == bindparam("k_seq"))

# The condition as the partial index ix_sagemaker_pipeline_executions_active declares it; with the
# claim of each execution (which server runs it, until when), if any.
_ACTIVE = (select(executions_t.c.account_id, executions_t.c.region, executions_t.c.execution_id,
                  executions_t.c.status, executions_t.c.parallelism, claims_t.c.owner, claims_t.c.expires_at)
           .select_from(executions_t.outerjoin(claims_t, (claims_t.c.kind == literal_column(f"'{EXECUTION}'"))
                                               & (claims_t.c.account_id == executions_t.c.account_id)
                                               & (claims_t.c.region == executions_t.c.region)
                                               & (claims_t.c.item_id == executions_t.c.execution_id)))
           .where(text(ACTIVE_EXECUTIONS_SQL)))
_LOAD = (select(executions_t, pipelines_t.c.name.label("pipeline_name"),
                pipelines_t.c.role_arn.label("pipeline_role_arn"),
                pipelines_t.c.parallelism.label("pipeline_parallelism"))
         .join(pipelines_t, pipelines_t.c.pipeline_id == executions_t.c.pipeline_id)
         .where(_EXEC_PK))
_STATUS = select(executions_t.c.status).where(_EXEC_PK)
_STATUS_FOR_UPDATE = _STATUS.with_for_update()
_STEPS = select(steps_t).where(_STEPS_OF).order_by(steps_t.c.seq)
_STEP = select(steps_t).where(_STEP_PK)
_INSERT_STEP = direct.Statement(insert(steps_t))
_UPDATE_STEP = update(steps_t).where(_STEP_PK)
_FINISH = (update(executions_t)
           .where(_EXEC_PK & executions_t.c.status.in_(ACTIVE_EXECUTION_STATUSES))
           # A stop that arrived while the last steps were finishing wins: the execution was stopped.
           .values(status=case((executions_t.c.status == "Stopping", "Stopped"), else_=bindparam("v_status")),
                   failure_reason=case((executions_t.c.status == "Stopping", None), else_=bindparam("v_reason")),
                   ended_at=bindparam("v_now"), last_modified_at=bindparam("v_now")))

# The execution's end written together with its last step (runner._decide_at_once): only from
# Executing, so a stop that came first wins and nothing is written.
_END = direct.Statement(
    update(executions_t)
    .where(_EXEC_PK & (executions_t.c.status == "Executing"))
    .values(status=bindparam("v_status"), failure_reason=bindparam("v_reason"), ended_at=bindparam("v_now"),
            last_modified_at=bindparam("v_now")))


def is_active(claims: Any) -> Any:
    """For Claims.purge: the claimed execution is still Executing or Stopping."""
    return (select(executions_t.c.execution_id)
            .where((executions_t.c.account_id == claims.c.account_id) & (executions_t.c.region == claims.c.region)
                   & (executions_t.c.execution_id == claims.c.item_id)
                   & executions_t.c.status.in_(ACTIVE_EXECUTION_STATUSES)))


class ActiveExecution(NamedTuple):
    key: ExecKey
    status: str
    parallelism: Any  # the execution's ParallelismConfiguration
    owner: str | None  # the server whose claim runs it (stratum.store.claims), None if unclaimed
    expires_at: float | None  # when that claim's lease ends


def active_executions(conn: Connection) -> list[ActiveExecution]:
    """Every Executing or Stopping execution, with its claim."""
    return [ActiveExecution(ExecKey(r.account_id, r.region, r.execution_id), r.status, r.parallelism, r.owner,
                            r.expires_at)
            for r in conn.execute(_ACTIVE)]


def load_execution(conn: Connection, key: ExecKey) -> Row[Any] | None:
    return conn.execute(_LOAD, key.params()).first()


def load_steps(conn: Connection, key: ExecKey) -> list[Row[Any]]:
    return list(conn.execute(_STEPS, key.params()))


def load_step(conn: Connection, key: ExecKey, seq: int) -> Row[Any] | None:
    return conn.execute(_STEP, {**key.params(), "k_seq": seq}).first()


def execution_status(conn: Connection, key: ExecKey, *, lock: bool = False) -> str | None:
    """The execution's status; ``lock`` serializes with StopPipelineExecution (PostgreSQL row lock,
    SQLite's write transaction already holds the database lock)."""
    return conn.execute(_STATUS_FOR_UPDATE if lock else _STATUS, key.params()).scalar()


def insert_step(conn: Connection, key: ExecKey, *, seq: int, name: str, step_type: str, display_name: str | None,
                description: str | None, status: str, now: datetime, attempt: int = 1,
                **values: Any) -> None:
    row = {"account_id": key.account_id, "region": key.region, "execution_id": key.execution_id, "seq": seq,
           "step_name": name, "step_type": step_type, "display_name": display_name, "description": description,
           "status": status, "started_at": now, "ended_at": None, "failure_reason": None,
           "attempt_count": attempt, "step_metadata": None, "cache_hit_result": None,
           "selective_execution_result": None, "iteration_context": None, "outputs": None,
           "last_modified_at": now}
    row.update(values)
    _INSERT_STEP.rowcount(conn, row)


_UPDATES: dict[tuple[tuple[str, ...], tuple[str, ...]], Any] = {}


def update_step(conn: Connection, key: ExecKey, seq: int, now: datetime, *, only_if: tuple[str, ...] = (),
                **values: Any) -> int:
    """Set ``values`` (column=value) on one step row, only while its status is one of ``only_if``
    when given; returns the number of rows changed."""
    columns = tuple(sorted(values))
    stmt = _UPDATES.get((columns, only_if))
    if stmt is None:
        # One statement per (column set, condition), built once: a handful exist.
        stmt = _UPDATE_STEP.values(**{c: bindparam(f"v_{c}") for c in columns}, last_modified_at=bindparam("v_now"))
        if only_if:
            stmt = stmt.where(steps_t.c.status.in_(only_if))
        _UPDATES[(columns, only_if)] = stmt
    params = {**key.params(), "k_seq": seq, "v_now": now}
    params.update({f"v_{c}": v for c, v in values.items()})
    return int(conn.execute(stmt, params).rowcount)


def finish_execution(conn: Connection, key: ExecKey, status: str, reason: str | None, now: datetime) -> int:
    return int(conn.execute(_FINISH, {**key.params(), "v_status": status, "v_reason": reason, "v_now": now}).rowcount)


def end_execution(conn: Connection, key: ExecKey, status: str, reason: str | None, now: datetime) -> bool:
    """End an Executing execution; False (nothing written) if it is not Executing (any more)."""
    return _END.rowcount(conn, {**key.params(), "v_status": status, "v_reason": reason, "v_now": now}) == 1
