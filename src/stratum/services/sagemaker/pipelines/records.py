"""Pipeline records: create/update/delete pipelines, keep their definition versions, start and
stop executions. No HTTP and no authorization here: every function takes an open connection so the
provider decides the transaction and authorizes between the lookup and the write.
"""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, bindparam, delete, exists, insert, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from stratum.engine import ending, events
from stratum.engine.records import ExecKey
from stratum.protocol.errors import ServiceError
from stratum.services.ram import access as ram_access
from stratum.services.sagemaker import errors
from stratum.services.sagemaker.arns import (
    ExecutionRef,
    PipelineRef,
    execution_arn,
    parse_execution_arn,
    parse_pipeline_ref,
    pipeline_arn,
)
from stratum.services.sagemaker.idempotency import TOKEN_TTL
from stratum.services.sagemaker.pipelines.definition import (
    DefinitionError,
    PipelineDefinition,
    parameters_for_listing,
    parse_definition,
    resolve_parameters,
)
from stratum.services.sagemaker.tables import PIPELINE_COLUMNS
from stratum.services.sagemaker.tables import (
    sagemaker_pipeline_execution_steps as steps_t,
)
from stratum.services.sagemaker.tables import (
    sagemaker_pipeline_executions as executions_t,
)
from stratum.services.sagemaker.tables import (
    sagemaker_pipeline_versions as versions_t,
)
from stratum.services.sagemaker.tables import (
    sagemaker_pipelines as pipelines_t,
)
from stratum.store import direct

ACTIVE_STEP_STATUSES = ("Starting", "Executing", "Stopping")
_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"
TERMINAL_EXECUTION_STATUSES = ("Stopped", "Failed", "Succeeded", "CompletedWithFailures")


def new_id(length: int) -> str:
    """Random lower-case alphanumeric id, as in execution ARNs ("8y0qtryacb0h").

    Random bytes mapped to characters by one table: the 252 byte values below 7 * 36 each stand for
    one character (every character equally likely), the 4 above are dropped.
    """
    while True:
        text = secrets.token_bytes(length + 8).translate(_BASE36_OF_BYTE, _BYTES_ABOVE_BASE36)
        if len(text) >= length:
            return text[:length].decode("ascii")


_BASE36_OF_BYTE = bytes(ord(_BASE36[b % 36]) for b in range(256))
_BYTES_ABOVE_BASE36 = bytes(range(252, 256))


@dataclass(frozen=True)
class Actor:
    """Who makes a change, for the CreatedBy / LastModifiedBy user contexts."""

    arn: str
    principal_id: str

    def user_context(self) -> dict[str, Any]:
        return {"IamIdentity": {"Arn": self.arn, "PrincipalId": self.principal_id}}


# --------------------------------------------------------------------------------------------- lookup
def is_visible(caller_account: str, owner_account: str, conn: Connection | None = None,
               pipeline_arn_: str | None = None) -> bool:
    """Whether the caller may address a pipeline owned by ``owner_account`` at all.

    The owner always can; another account only by ARN, while an active AWS RAM share gives it the
    pipeline (``conn`` and ``pipeline_arn_`` given). Anything else looks exactly like a missing
    pipeline. What the caller may *do* with a shared pipeline is the authorizer's decision.
    """
    if caller_account == owner_account:
        return True
    if conn is None or pipeline_arn_ is None:
        return False
    return ram_access.is_shared_with(conn, caller_account, pipeline_arn_)


def resolve_pipeline(caller_account: str, region: str, name_or_arn: str,
                     conn: Connection | None = None) -> PipelineRef:
    """Turn a PipelineName parameter into the (owner, region, name) it designates, or ResourceNotFound.

    A name always means the caller's own pipeline; an ARN may name a pipeline shared with it."""
    ref = parse_pipeline_ref(name_or_arn, caller_account, region)
    if ref is None:
        raise errors.pipeline_not_found(name_or_arn)
    if ref.region != region or not is_visible(caller_account, ref.account_id, conn, ref.arn):
        raise errors.pipeline_not_found(ref.arn)
    return ref


def _pipeline_where(ref: PipelineRef) -> Any:
    return ((pipelines_t.c.account_id == ref.account_id) & (pipelines_t.c.region == ref.region)
            & (pipelines_t.c.name_key == ref.name_key))


# The hot lookups are built once with bind parameters: building SQLAlchemy expressions per request
# costs more than running the (indexed) query itself.
_BY_NAME = ((pipelines_t.c.account_id == bindparam("account")) & (pipelines_t.c.region == bindparam("region"))
            & (pipelines_t.c.name_key == bindparam("name_key")))
_GET_PIPELINE = select(pipelines_t).where(_BY_NAME)
# Writers lock the row (PostgreSQL; SQLite already serializes writers with BEGIN IMMEDIATE) so two
# concurrent UpdatePipeline calls cannot both create "the next" version.
_GET_PIPELINE_FOR_UPDATE = _GET_PIPELINE.with_for_update()
_VERSION_COLUMNS = (
    versions_t.c.version_id,
    versions_t.c.definition,
    versions_t.c.display_name.label("version_display_name"),
    versions_t.c.description.label("version_description"),
    versions_t.c.aliases.label("version_aliases"),
)
# What StartPipelineExecution needs (and hands the engine): no definition (parses are cached).
_START_COLUMNS = (pipelines_t.c.pipeline_id, pipelines_t.c.account_id, pipelines_t.c.region, pipelines_t.c.name,
                  pipelines_t.c.name_key, pipelines_t.c.arn, pipelines_t.c.tags, versions_t.c.version_id,
                  pipelines_t.c.role_arn.label("pipeline_role_arn"),
                  pipelines_t.c.parallelism.label("pipeline_parallelism"))


def _version_statements(columns: tuple[Any, ...]) -> tuple[Any, Any]:
    """(latest version, given version) lookups joining a pipeline with one of its versions."""
    on_pipeline = versions_t.c.pipeline_id == pipelines_t.c.pipeline_id
    latest = (select(*columns).select_from(pipelines_t)
              .join(versions_t, on_pipeline & (versions_t.c.version_id == pipelines_t.c.latest_version))
              .where(_BY_NAME))
    given = (select(*columns).select_from(pipelines_t)
             .join(versions_t, on_pipeline & (versions_t.c.version_id == bindparam("version_id")))
             .where(_BY_NAME))
    return latest, given


_FULL = tuple(direct.Statement(s) for s in _version_statements((*PIPELINE_COLUMNS, *_VERSION_COLUMNS)))
_FOR_START = tuple(direct.Statement(s) for s in _version_statements(_START_COLUMNS))


def _ref_params(ref: PipelineRef) -> dict[str, Any]:
    return {"account": ref.account_id, "region": ref.region, "name_key": ref.name_key}


def get_pipeline(conn: Connection, ref: PipelineRef, *, lock: bool = False) -> Row[Any] | None:
    """The pipeline row (owner's account in .account_id), or None; ``lock`` for read-modify-write."""
    return conn.execute(_GET_PIPELINE_FOR_UPDATE if lock else _GET_PIPELINE, _ref_params(ref)).first()


def get_pipeline_version(conn: Connection, ref: PipelineRef, version_id: int | None = None,
                         alias: str | None = None, *, for_start: bool = False) -> Row[Any] | None:
    """The pipeline row joined with one version (latest unless ``version_id``/``alias``), in one
    query; None if the pipeline does not exist, ResourceNotFound if only the version does not.

    ``for_start`` selects only what StartPipelineExecution needs (no definition: see parsed_version).
    """
    if alias is not None:
        version_id = _version_for_alias(conn, ref, alias)
        if version_id is None:
            return None
    latest, given = _FOR_START if for_start else _FULL
    if version_id is None:
        row = latest.first(conn, _ref_params(ref))
    elif version_id > MAX_VERSION_ID:  # a long no version has: PostgreSQL's integer would overflow
        row = None
    else:
        row = given.first(conn, {**_ref_params(ref), "version_id": version_id})
    if row is None and version_id is not None and get_pipeline(conn, ref) is not None:
        # Error path only: tell a missing version from a missing pipeline.
        raise errors.version_not_found(ref.arn, version_id)
    return row


# Version ids are stored as 32-bit integers; the API's PipelineVersionId is a long.
MAX_VERSION_ID = 2**31 - 1


def _version_for_alias(conn: Connection, ref: PipelineRef, alias: str) -> int | None:
    rows = conn.execute(select(versions_t.c.version_id, versions_t.c.aliases)
                        .join(pipelines_t, pipelines_t.c.pipeline_id == versions_t.c.pipeline_id)
                        .where(_pipeline_where(ref))).all()
    if not rows:
        return None
    for row in rows:
        if alias in (row.aliases or []):
            return int(row.version_id)
    raise errors.alias_not_found(ref.arn, alias)


def version_for_alias(conn: Connection, pipeline: Row[Any], alias: str) -> int:
    version_id = _version_for_alias(conn, PipelineRef(pipeline.account_id, pipeline.region, pipeline.name_key,
                                                      pipeline.name), alias)
    if version_id is None:
        raise errors.pipeline_not_found(pipeline.arn)
    return version_id


def resolve_execution(caller_account: str, region: str, arn: str, conn: Connection | None = None) -> ExecutionRef:
    """An execution is visible wherever its pipeline is (sharing a pipeline shares its executions)."""
    ref = parse_execution_arn(arn)
    if ref is None:
        raise errors.execution_not_found(arn)
    if ref.region != region or not is_visible(caller_account, ref.account_id, conn, ref.pipeline_arn):
        raise errors.execution_not_found(ref.arn)
    return ref


def _execution_where(ref: ExecutionRef) -> Any:
    return ((executions_t.c.account_id == ref.account_id) & (executions_t.c.region == ref.region)
            & (executions_t.c.execution_id == ref.execution_id)
            & (executions_t.c.pipeline_name_key == ref.pipeline_key))


_EXECUTION_BY_REF = ((executions_t.c.account_id == bindparam("account")) & (executions_t.c.region == bindparam("region"))
                     & (executions_t.c.execution_id == bindparam("execution_id"))
                     & (executions_t.c.pipeline_name_key == bindparam("pipeline_key")))
_GET_EXECUTION = select(executions_t).where(_EXECUTION_BY_REF)
_GET_EXECUTION_FOR_UPDATE = _GET_EXECUTION.with_for_update()
_GET_EXECUTION_DEFINITION = (
    select(executions_t, versions_t.c.definition, versions_t.c.created_at.label("version_created_at"))
    .join(versions_t, (versions_t.c.pipeline_id == executions_t.c.pipeline_id)
          & (versions_t.c.version_id == executions_t.c.pipeline_version_id))
    .where(_EXECUTION_BY_REF))


def _execution_params(ref: ExecutionRef) -> dict[str, Any]:
    return {"account": ref.account_id, "region": ref.region, "execution_id": ref.execution_id,
            "pipeline_key": ref.pipeline_key}


def get_execution(conn: Connection, ref: ExecutionRef, *, lock: bool = False) -> Row[Any] | None:
    return conn.execute(_GET_EXECUTION_FOR_UPDATE if lock else _GET_EXECUTION, _execution_params(ref)).first()


def get_execution_with_definition(conn: Connection, ref: ExecutionRef) -> Row[Any] | None:
    """The execution joined with the definition (and creation time) of the version it runs."""
    return conn.execute(_GET_EXECUTION_DEFINITION, _execution_params(ref)).first()


# ----------------------------------------------------------------------------------------- definitions
_PARSED: OrderedDict[tuple[str, int], PipelineDefinition] = OrderedDict()
_PARSED_LOCK = threading.Lock()
_PARSED_MAX = 128


def validate_definition(text: str) -> PipelineDefinition:
    try:
        return parse_definition(text)
    except DefinitionError as exc:
        raise errors.validation(str(exc)) from None


def check_inline_definition(params: dict[str, Any]) -> None:
    """CreatePipeline / UpdatePipeline: the inline definition's validation, a pure function of the
    request; the server runs it in its parser process for large bodies (server.parsing_process)."""
    text = params.get("PipelineDefinition")
    if text is not None and params.get("PipelineDefinitionS3Location") is None:
        validate_definition(text)


_GET_DEFINITION = select(versions_t.c.definition).where(
    (versions_t.c.pipeline_id == bindparam("pid")) & (versions_t.c.version_id == bindparam("vid")))


def parsed_version(conn: Connection, pipeline_id: str, version_id: int) -> PipelineDefinition:
    """A stored version's parsed definition. Versions are immutable, so parses are cached by key
    and a hit costs neither the definition's transfer nor its parse."""
    key = (pipeline_id, version_id)
    with _PARSED_LOCK:
        hit = _PARSED.get(key)
        if hit is not None:
            _PARSED.move_to_end(key)
            return hit
    text = conn.execute(_GET_DEFINITION, {"pid": pipeline_id, "vid": version_id}).scalar_one()
    defn = validate_definition(text)
    with _PARSED_LOCK:
        _PARSED[key] = defn
        while len(_PARSED) > _PARSED_MAX:
            _PARSED.popitem(last=False)
    return defn


# -------------------------------------------------------------------------------------------- pipelines
def _check_aliases(conn: Connection, pipeline_id: str | None, aliases: list[str], except_version: int | None,
                   arn: str) -> None:
    """An alias names one version of a pipeline: refuse to put it on a second one."""
    if len(set(aliases)) != len(aliases):
        raise errors.validation("PipelineVersionAliases must not contain duplicates.")
    if not aliases or pipeline_id is None:
        return
    for row in conn.execute(select(versions_t.c.version_id, versions_t.c.aliases)
                            .where(versions_t.c.pipeline_id == pipeline_id)):
        if row.version_id == except_version:
            continue
        taken = set(aliases) & set(row.aliases or [])
        if taken:
            raise errors.conflict(f"Pipeline version alias '{sorted(taken)[0]}' is already assigned to version "
                                  f"{row.version_id} of pipeline '{arn}'.")


def create_pipeline(conn: Connection, *, account: str, region: str, name: str, definition: str, role_arn: str,
                    display_name: str | None, description: str | None, tags: list[dict[str, str]],
                    parallelism: dict[str, Any] | None, aliases: list[str], actor: Actor, now: datetime) -> str:
    arn = pipeline_arn(region, account, name)
    key = name.lower()
    taken = conn.execute(select(pipelines_t.c.pipeline_id).where(
        (pipelines_t.c.account_id == account) & (pipelines_t.c.region == region)
        & (pipelines_t.c.name_key == key))).first()
    if taken is not None:
        raise errors.pipeline_exists(name)
    _check_aliases(conn, None, aliases, None, arn)
    pipeline_id = new_id(24)
    user = actor.user_context()
    try:
        conn.execute(insert(pipelines_t).values(
            pipeline_id=pipeline_id, account_id=account, region=region, name_key=key, name=name, arn=arn,
            display_name=display_name or name, description=description, role_arn=role_arn, status="Active",
            parallelism=parallelism, latest_version=1, tags=tags, created_at=now, created_by=user,
            last_modified_at=now, last_modified_by=user))
    except IntegrityError:
        # A concurrent CreatePipeline won the unique (account, region, name) race.
        raise errors.pipeline_exists(name) from None
    conn.execute(insert(versions_t).values(
        pipeline_id=pipeline_id, version_id=1, definition=definition, display_name=None, description=None,
        aliases=aliases, created_at=now, created_by=user, last_modified_at=now, last_modified_by=user))
    return arn


def update_pipeline(conn: Connection, row: Row[Any], *, definition: str | None, role_arn: str | None,
                    display_name: str | None, description: str | None, parallelism: dict[str, Any] | None,
                    aliases: list[str] | None, actor: Actor, now: datetime) -> int:
    """Apply an UpdatePipeline; a new definition makes a new version. Returns the current version id."""
    user = actor.user_context()
    version_id = int(row.latest_version)
    if definition is not None:
        version_id += 1
        _check_aliases(conn, row.pipeline_id, aliases or [], None, row.arn)
        conn.execute(insert(versions_t).values(
            pipeline_id=row.pipeline_id, version_id=version_id, definition=definition, display_name=None,
            description=None, aliases=aliases or [], created_at=now, created_by=user, last_modified_at=now,
            last_modified_by=user))
    elif aliases:
        _check_aliases(conn, row.pipeline_id, aliases, version_id, row.arn)
        current = conn.execute(select(versions_t.c.aliases).where(
            (versions_t.c.pipeline_id == row.pipeline_id) & (versions_t.c.version_id == version_id))).scalar()
        merged = list(current or []) + [a for a in aliases if a not in (current or [])]
        conn.execute(update(versions_t).where((versions_t.c.pipeline_id == row.pipeline_id)
                                              & (versions_t.c.version_id == version_id)).values(aliases=merged))
    changes: dict[str, Any] = {"latest_version": version_id, "last_modified_at": now, "last_modified_by": user}
    if role_arn is not None:
        changes["role_arn"] = role_arn
    if display_name is not None:
        changes["display_name"] = display_name
    if description is not None:
        changes["description"] = description
    if parallelism is not None:
        changes["parallelism"] = parallelism
    conn.execute(update(pipelines_t).where(pipelines_t.c.pipeline_id == row.pipeline_id).values(**changes))
    return version_id


def update_pipeline_version(conn: Connection, row: Row[Any], version_id: int, *, display_name: str | None,
                            description: str | None, add_aliases: list[str], remove_aliases: list[str],
                            actor: Actor, now: datetime) -> None:
    current = None if version_id > MAX_VERSION_ID else conn.execute(select(versions_t.c.aliases).where(
        (versions_t.c.pipeline_id == row.pipeline_id) & (versions_t.c.version_id == version_id))).first()
    if current is None:
        raise errors.version_not_found(row.arn, version_id)
    _check_aliases(conn, row.pipeline_id, add_aliases, version_id, row.arn)
    aliases = [a for a in (current.aliases or []) if a not in remove_aliases]
    aliases += [a for a in add_aliases if a not in aliases]
    if len(aliases) > 10:
        raise errors.validation("A pipeline version can have at most 10 aliases.")
    changes: dict[str, Any] = {"aliases": aliases, "last_modified_at": now,
                               "last_modified_by": actor.user_context()}
    if display_name is not None:
        changes["display_name"] = display_name
    if description is not None:
        changes["description"] = description
    conn.execute(update(versions_t).where((versions_t.c.pipeline_id == row.pipeline_id)
                                          & (versions_t.c.version_id == version_id)).values(**changes))


def delete_pipeline(conn: Connection, row: Row[Any]) -> None:
    """Remove a pipeline with its versions, executions and steps (nothing of it stays addressable)."""
    execs = select(executions_t.c.execution_id).where(
        (executions_t.c.account_id == row.account_id) & (executions_t.c.region == row.region)
        & (executions_t.c.pipeline_id == row.pipeline_id))
    conn.execute(delete(steps_t).where((steps_t.c.account_id == row.account_id) & (steps_t.c.region == row.region)
                                       & steps_t.c.execution_id.in_(execs.scalar_subquery())))
    conn.execute(delete(executions_t).where((executions_t.c.account_id == row.account_id)
                                            & (executions_t.c.region == row.region)
                                            & (executions_t.c.pipeline_id == row.pipeline_id)))
    conn.execute(delete(versions_t).where(versions_t.c.pipeline_id == row.pipeline_id))
    conn.execute(delete(pipelines_t).where(pipelines_t.c.pipeline_id == row.pipeline_id))


# ------------------------------------------------------------------------------------------- executions
def _resolve_config_value(value: Any, variables: dict[str, str]) -> str | None:
    """Evaluate the small expression language PipelineExperimentConfig values use."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        if "Get" in value and isinstance(value["Get"], str):
            return variables.get(value["Get"])
        join = value.get("Std:Join")
        if isinstance(join, dict) and isinstance(join.get("Values"), list):
            parts = [_resolve_config_value(v, variables) for v in join["Values"]]
            if any(p is None for p in parts):
                return None
            return str(join.get("On", "")).join(p for p in parts if p is not None)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def experiment_config(defn: PipelineDefinition, pipeline_name: str, execution_id: str,
                      listing: list[dict[str, str]]) -> dict[str, str] | None:
    """PipelineExperimentConfig as DescribePipelineExecution reports it, resolved for this execution."""
    config = defn.experiment_config
    if not config:
        return None
    variables = {"Execution.PipelineName": pipeline_name, "Execution.PipelineExecutionId": execution_id}
    variables.update({f"Parameters.{p['Name']}": p["Value"] for p in listing})
    out: dict[str, str] = {}
    for key in ("ExperimentName", "TrialName"):
        resolved = _resolve_config_value(config.get(key), variables)
        if resolved:
            out[key] = resolved
    return out or None


def check_selective_execution(conn: Connection, row: Row[Any], defn: PipelineDefinition,
                              config: dict[str, Any] | None) -> None:
    if not config:
        return
    unknown = [s["StepName"] for s in config.get("SelectedSteps", []) if s["StepName"] not in defn.steps]
    if unknown:
        raise errors.validation(f"SelectedSteps contains step '{unknown[0]}', which is not defined in the "
                                "pipeline definition.")
    source = config.get("SourcePipelineExecutionArn")
    if source:
        ref = parse_execution_arn(source)
        found = ref is not None and conn.execute(select(executions_t.c.execution_id).where(
            _execution_where(ref) & (executions_t.c.pipeline_id == row.pipeline_id))).first()
        if not found:
            raise errors.validation(f"SourcePipelineExecutionArn '{source}' is not an execution of pipeline "
                                    f"'{row.arn}'.")


# Built once: StartPipelineExecution is a hot path (see _BY_NAME). With a ClientRequestToken the
# insert does nothing when the token (unique per owner account and region) is taken.
_INSERT_EXECUTION = insert(executions_t)
_INSERT_EXECUTION_DIRECT = direct.Statement(_INSERT_EXECUTION)
_INSERT_EXECUTION_UNLESS_TAKEN = direct.Statement(_INSERT_EXECUTION, {
    "sqlite": sqlite_insert(executions_t).on_conflict_do_nothing(),
    "postgresql": postgresql_insert(executions_t).on_conflict_do_nothing()})
# Bind names differ from column names: UPDATE reserves those.
_TOKEN_WHERE = ((executions_t.c.account_id == bindparam("t_account")) & (executions_t.c.region == bindparam("t_region"))
                & (executions_t.c.client_token == bindparam("t_token")))
_BY_TOKEN = select(executions_t.c.execution_id, executions_t.c.arn, executions_t.c.client_token_fingerprint,
                   executions_t.c.created_at).where(_TOKEN_WHERE)
_RELEASE_TOKEN = update(executions_t).where(_TOKEN_WHERE).values(client_token=None, client_token_fingerprint=None)


@dataclass(frozen=True)
class StartedExecution:
    """What start_execution recorded, beyond the row it was given."""

    execution_id: str
    arn: str
    resolved_parameters: dict[str, Any]
    experiment_config: dict[str, str] | None


# Called with a new execution and its row just before the insert (see record_execution).
BeforeInsert = Callable[[StartedExecution, dict[str, Any]], Iterable[Callable[[], object]] | None]


def start_execution(conn: Connection, row: Row[Any], defn: PipelineDefinition, *,
                    supplied: list[dict[str, str]] | None, display_name: str | None, description: str | None,
                    parallelism: dict[str, Any] | None, selective: dict[str, Any] | None, role_arn: str | None,
                    mlflow_experiment_name: str | None, actor: Actor, now: datetime) -> str:
    """Record a new execution in status Executing; ``row`` is a get_pipeline_version row."""
    started = record_execution(conn, row, defn, supplied=supplied, display_name=display_name,
                               description=description, parallelism=parallelism, selective=selective,
                               role_arn=role_arn, mlflow_experiment_name=mlflow_experiment_name, actor=actor,
                               now=now, execution_id=new_id(12))
    assert started is not None  # without a token nothing can be taken
    return started.arn


def record_execution(conn: Connection, row: Row[Any], defn: PipelineDefinition, *,
                     supplied: list[dict[str, str]] | None, display_name: str | None, description: str | None,
                     parallelism: dict[str, Any] | None, selective: dict[str, Any] | None, role_arn: str | None,
                     mlflow_experiment_name: str | None, actor: Actor, now: datetime, execution_id: str,
                     token: str | None = None, fingerprint: str | None = None,
                     before_insert: BeforeInsert | None = None) -> StartedExecution | None:
    """start_execution with the execution id drawn by the caller (new_id(12)), and the request's
    ClientRequestToken and fingerprint (idempotency.fingerprint) kept on the row. None, with
    nothing written, when the token (or, in theory, the id) is taken: see started_by_token.

    ``before_insert(started, row)`` is called with the row about to be inserted, which it may
    change; the writes it returns run right after the insert (not at all if nothing is inserted)."""
    try:
        resolved = resolve_parameters(defn, supplied)
    except DefinitionError as exc:
        raise errors.validation(str(exc)) from None
    listing = parameters_for_listing(defn, resolved)
    check_selective_execution(conn, row, defn, selective)
    arn = execution_arn(row.arn, execution_id)
    experiment = experiment_config(defn, row.name, execution_id, listing)
    user = actor.user_context()
    values = {
        "account_id": row.account_id, "region": row.region, "execution_id": execution_id,
        "pipeline_id": row.pipeline_id, "pipeline_name_key": row.name_key, "pipeline_arn": row.arn, "arn": arn,
        "pipeline_version_id": row.version_id,
        # The service's own default display name: "execution-<epoch millis>".
        "display_name": display_name or f"execution-{int(now.timestamp() * 1000)}",
        "description": description, "status": "Executing", "failure_reason": None,
        "resolved_parameters": resolved, "parameters": listing, "parallelism": parallelism,
        "selective_execution": selective,
        "experiment_config": experiment,
        "role_arn": role_arn, "mlflow_experiment_name": mlflow_experiment_name, "tags": [], "created_at": now,
        "created_by": user, "last_modified_at": now, "last_modified_by": user, "ended_at": None,
        "client_token": token, "client_token_fingerprint": fingerprint}
    started = StartedExecution(execution_id, arn, resolved, experiment)
    writes = before_insert(started, values) if before_insert is not None else None
    if token is None:
        _INSERT_EXECUTION_DIRECT.rowcount(conn, values)
    elif _INSERT_EXECUTION_UNLESS_TAKEN.rowcount(conn, values) != 1:
        return None
    # Its "Executing" event first: the writes that follow may already end it (start_in).
    events.execution_status(conn, account=row.account_id, region=row.region, pipeline_arn=row.arn, execution_arn=arn,
                            display_name=values["display_name"], description=description, current="Executing",
                            previous=None, started=now, ended=None, now=now)
    for write in writes or ():
        write()
    return started


def start_execution_once(conn: Connection, row: Row[Any], defn: PipelineDefinition, *, token: str | None,
                         fingerprint: str | None, supplied: list[dict[str, str]] | None, display_name: str | None,
                         description: str | None, parallelism: dict[str, Any] | None,
                         selective: dict[str, Any] | None, role_arn: str | None, mlflow_experiment_name: str | None,
                         actor: Actor, now: datetime,
                         before_insert: BeforeInsert | None = None) -> StartedExecution | str:
    """StartPipelineExecution's record under its ClientRequestToken: the new execution, or the ARN
    of the one an earlier request with this token started (its answer, replayed).

    A new token, the usual case, costs nothing but two columns of the execution's insert."""
    for _ in range(3):  # again after a token whose start expired was released (or an id was taken)
        try:
            started = record_execution(
                conn, row, defn, supplied=supplied, display_name=display_name, description=description,
                parallelism=parallelism, selective=selective, role_arn=role_arn,
                mlflow_experiment_name=mlflow_experiment_name, actor=actor, now=now, execution_id=new_id(12),
                token=token, fingerprint=fingerprint, before_insert=before_insert)
        except ServiceError:
            # A retry of a start that succeeded gets its answer, even if the request would not pass now.
            if token and fingerprint:
                arn = started_by_token(conn, row.account_id, row.region, token, fingerprint, now)
                if arn is not None:
                    return arn
            raise
        if started is not None:
            return started
        assert token and fingerprint
        arn = started_by_token(conn, row.account_id, row.region, token, fingerprint, now)
        if arn is not None:
            return arn
    raise ServiceError("InternalFailure", "The pipeline execution could not be recorded; retry the request.", 500)


def started_by_token(conn: Connection, account: str, region: str, token: str, fingerprint: str,
                     now: datetime) -> str | None:
    """The ARN of the execution an earlier StartPipelineExecution with this ClientRequestToken
    started (``account``/``region``: the pipeline owner's), or None if there is none, or it is
    older than idempotency.TOKEN_TTL: then the token is released for this request.
    ConflictException if that request's parameters differed."""
    key = {"t_account": account, "t_region": region, "t_token": token}
    found = conn.execute(_BY_TOKEN, key).first()
    if found is None:
        return None
    if found.created_at < now - TOKEN_TTL:
        conn.execute(_RELEASE_TOKEN, key)
        return None
    if found.client_token_fingerprint != fingerprint:
        raise errors.conflict(f"ClientRequestToken '{token}' was already used for a StartPipelineExecution request "
                              "with different parameters.")
    return str(found.arn)


def stop_execution(conn: Connection, row: Row[Any], actor: Actor, now: datetime) -> str:
    """Ask an execution to stop; returns its new status.

    With steps still running the execution goes to Stopping and the engine finishes the job; with
    none (nothing has been scheduled yet) there is nothing to wait for, so it is Stopped at once.
    The engine must re-read the status before starting any step.
    """
    if row.status in ("Stopping", "Stopped"):
        return str(row.status)
    if row.status in TERMINAL_EXECUTION_STATUSES:
        raise errors.conflict(f"Pipeline execution '{row.arn}' is in status {row.status} and cannot be stopped.")
    running = conn.execute(select(exists().where(
        (steps_t.c.account_id == row.account_id) & (steps_t.c.region == row.region)
        & (steps_t.c.execution_id == row.execution_id) & steps_t.c.status.in_(ACTIVE_STEP_STATUSES)))).scalar()
    status = "Stopping" if running else "Stopped"
    conn.execute(update(executions_t).where(
        (executions_t.c.account_id == row.account_id) & (executions_t.c.region == row.region)
        & (executions_t.c.execution_id == row.execution_id)).values(
        status=status, last_modified_at=now, last_modified_by=actor.user_context(),
        ended_at=None if running else now))
    events.execution_status(conn, account=row.account_id, region=row.region, pipeline_arn=row.pipeline_arn,
                            execution_arn=row.arn, display_name=row.display_name, description=row.description,
                            current=status, previous=str(row.status), started=row.created_at,
                            ended=None if running else now, now=now)
    if not running:
        ending.execution_ended(conn, ExecKey(row.account_id, row.region, row.execution_id), now, event=False)
    return status


def update_execution(conn: Connection, row: Row[Any], *, display_name: str | None, description: str | None,
                     parallelism: dict[str, Any] | None, actor: Actor, now: datetime) -> None:
    changes: dict[str, Any] = {"last_modified_at": now, "last_modified_by": actor.user_context()}
    if display_name is not None:
        changes["display_name"] = display_name
    if description is not None:
        changes["description"] = description
    if parallelism is not None:
        changes["parallelism"] = parallelism
    conn.execute(update(executions_t).where(
        (executions_t.c.account_id == row.account_id) & (executions_t.c.region == row.region)
        & (executions_t.c.execution_id == row.execution_id)).values(**changes))
