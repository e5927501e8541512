"""Condition and Fail steps, which the engine decides itself: each is recorded finished in one
transaction, and a Fail step that is the last thing to run ends its execution in that same
transaction. An execution handed over by StartPipelineExecution (NewExecution) runs without being
read back; a stop that came first wins, and nothing is written for the step."""

from __future__ import annotations

import concurrent.futures
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from engine_testing import ACCOUNT, ACTOR, REGION, engine_app, engine_of, new_pipeline
from sqlalchemy import Connection

from stratum.engine.records import ExecKey, load_execution, load_steps
from stratum.engine.scheduler import PipelineEngine
from stratum.engine.state import NewExecution
from stratum.server.app_state import AppState
from stratum.services.sagemaker.pipelines import records as pl


@pytest.fixture
def app(tmp_path: Any) -> Iterator[AppState]:
    # only the in-process hand-over: what these tests are about
    with engine_app(tmp_path, poll_seconds=3600) as state:
        yield state


def count_transactions(engine: PipelineEngine) -> list[int]:
    """Count the engine's write transactions (a one-element list, updated in place)."""
    count = [0]
    original = engine.tx

    @contextmanager
    def counted(*args: Any) -> Iterator[Connection]:
        count[0] += 1
        with original(*args) as conn:
            yield conn

    engine.tx = counted  # type: ignore[method-assign]
    return count


def record(app: AppState, steps: list[dict[str, Any]], parameters: list[dict[str, Any]] | None = None,
           stop_first: bool = False) -> tuple[ExecKey, NewExecution]:
    """Record an execution as StartPipelineExecution does; returns what it hands the engine."""
    with app.db.begin() as conn:
        return record_in(conn, steps, parameters, stop_first)


def record_in(conn: Connection, steps: list[dict[str, Any]], parameters: list[dict[str, Any]] | None = None,
              stop_first: bool = False) -> tuple[ExecKey, NewExecution]:
    row, defn, now = new_pipeline(conn, steps, parameters)
    started = _record_execution(conn, row, defn, now)
    assert started is not None
    if stop_first:
        execution = pl.get_execution(conn, pl.parse_execution_arn(started.arn))  # type: ignore[arg-type]
        assert pl.stop_execution(conn, execution, ACTOR, now) == "Stopped"
    new = _new_execution(row, defn, started, now)
    return new.key, new


def _record_execution(conn: Connection, row: Any, defn: Any, now: Any,
                      before_insert: pl.BeforeInsert | None = None) -> pl.StartedExecution | None:
    return pl.record_execution(conn, row, defn, supplied=None, display_name=None, description=None,
                               parallelism=None, selective=None, role_arn=None, mlflow_experiment_name=None,
                               actor=ACTOR, now=now, execution_id=pl.new_id(12), before_insert=before_insert)


def _new_execution(row: Any, defn: Any, started: pl.StartedExecution, now: Any) -> NewExecution:
    """What StartPipelineExecution hands the engine for a recorded execution."""
    return NewExecution(key=ExecKey(ACCOUNT, REGION, started.execution_id), arn=started.arn, pipeline_arn=row.arn,
                        pipeline_name=row.name, pipeline_name_key=row.name_key, pipeline_id=row.pipeline_id,
                        role_arn=row.pipeline_role_arn, defn=defn, parameters=started.resolved_parameters,
                        created_at=now, experiment_config=started.experiment_config, parallelism=None,
                        pipeline_parallelism=row.pipeline_parallelism)


def run(app: AppState, key: ExecKey, new: NewExecution, timeout: float = 20) -> tuple[Any, dict[str, Any]]:
    """Hand the execution over and wait until the engine has forgotten it."""
    engine = engine_of(app)
    done: list[str] = []
    engine.on_execution_done = lambda k, status: done.append(status) if k == key else None
    engine.start()
    engine.execution_started(ACCOUNT, REGION, key.execution_id, new)
    deadline = time.monotonic() + timeout
    while not done or engine.active_count():
        assert time.monotonic() < deadline, "the execution did not finish"
        time.sleep(0.01)
    with app.db.read() as conn:
        return load_execution(conn, key), {r.step_name: r for r in load_steps(conn, key)}


def test_lone_fail_step_and_the_execution_end_are_one_transaction(app: AppState) -> None:
    key, new = record(app, [{"Name": "F", "Type": "Fail", "Arguments": {
        "ErrorMessage": {"Std:Join": {"On": " ", "Values": ["bad", {"Get": "Parameters.P"}]}}}}],
        parameters=[{"Name": "P", "Type": "String", "DefaultValue": "input"}])
    count = count_transactions(engine_of(app))
    execution, steps = run(app, key, new)
    assert count[0] == 1
    assert (execution.status, execution.failure_reason) == ("Failed", "bad input")
    assert execution.ended_at is not None
    step = steps["F"]
    assert (step.status, step.failure_reason, step.step_type) == ("Failed", "bad input", "Fail")
    assert step.step_metadata == {"Fail": {"ErrorMessage": "bad input"}}
    assert step.started_at == step.ended_at == execution.ended_at


def test_a_stop_before_the_fail_step_wins(app: AppState) -> None:
    key, new = record(app, [{"Name": "F", "Type": "Fail", "Arguments": {"ErrorMessage": "x"}}], stop_first=True)
    with app.db.read() as conn:
        stopped = load_execution(conn, key)
    execution, steps = run(app, key, new)
    assert steps == {}
    assert (execution.status, execution.ended_at, execution.failure_reason) == ("Stopped", stopped.ended_at, None)


def test_condition_then_fail_branch(app: AppState) -> None:
    key, new = record(app, [
        {"Name": "Check", "Type": "Condition", "Arguments": {
            "Conditions": [{"Type": "GreaterThan", "LeftValue": {"Get": "Parameters.N"}, "RightValue": 3}],
            "IfSteps": [{"Name": "TooBig", "Type": "Fail", "Arguments": {"ErrorMessage": "too big"}}],
            "ElseSteps": [{"Name": "Fine", "Type": "Fail", "Arguments": {"ErrorMessage": "fine"}}]}}],
        parameters=[{"Name": "N", "Type": "Integer", "DefaultValue": 5}])
    count = count_transactions(engine_of(app))
    execution, steps = run(app, key, new)
    assert count[0] == 2  # the Condition step; the Fail step with the execution's end
    assert sorted(steps) == ["Check", "TooBig"]
    check = steps["Check"]
    assert (check.status, check.outputs, check.step_metadata) == (
        "Succeeded", {"Outcome": True}, {"Condition": {"Outcome": "True"}})
    assert check.started_at == check.ended_at and check.seq < steps["TooBig"].seq
    assert (execution.status, execution.failure_reason) == ("Failed", "too big")


def test_fail_step_next_to_a_running_step_leaves_the_end_to_the_engine(app: AppState) -> None:
    # Both steps are ready at once: the Fail step is not the last one to run, so the execution's
    # end is written once both are done, by its own transaction.
    key, new = record(app, [
        {"Name": "F", "Type": "Fail", "Arguments": {"ErrorMessage": "stop"}},
        {"Name": "C", "Type": "Condition", "Arguments": {
            "Conditions": [{"Type": "Equals", "LeftValue": 1, "RightValue": 1}], "IfSteps": [], "ElseSteps": []}}])
    count = count_transactions(engine_of(app))
    execution, steps = run(app, key, new)
    assert count[0] == 3
    assert {name: row.status for name, row in steps.items()} == {"F": "Failed", "C": "Succeeded"}
    assert (execution.status, execution.failure_reason) == ("Failed", "stop")


def test_execution_read_back_when_not_handed_over(app: AppState) -> None:
    # RetryPipelineExecution and restarts load the execution from its rows: same result.
    key, _ = record(app, [{"Name": "F", "Type": "Fail", "Arguments": {"ErrorMessage": "loaded"}}])
    engine = engine_of(app)
    engine.start()
    engine.execution_started(ACCOUNT, REGION, key.execution_id)
    deadline = time.monotonic() + 20
    while True:
        with app.db.read() as conn:
            execution = load_execution(conn, key)
        if execution.status == "Failed":
            break
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert execution.failure_reason == "loaded"


# ----------------------------------------------------------------------------------- start_in
# StartPipelineExecution runs an execution's first steps in the transaction that records it when
# the engine decides them all itself; the request runs on the dispatcher's loop thread.
def on_loop(engine: PipelineEngine, fn: Callable[[], Any]) -> Any:
    result: concurrent.futures.Future[Any] = concurrent.futures.Future()

    def call() -> None:
        try:
            result.set_result(fn())
        except BaseException as exc:  # noqa: BLE001 - handed back to the test thread
            result.set_exception(exc)

    assert engine._loop is not None
    engine._loop.call_soon_threadsafe(call)
    return result.result(20)


def start_in(engine: PipelineEngine, conn: Connection, steps: list[dict[str, Any]],
             parameters: list[dict[str, Any]] | None = None) -> tuple[ExecKey, bool]:
    """Record an execution as StartPipelineExecution does, handing it to start_in just before its
    row is inserted; whether start_in decided its first steps."""
    row, defn, now = new_pipeline(conn, steps, parameters)
    ran: list[bool] = []

    def hand_over(started: pl.StartedExecution, values: dict[str, Any]) -> Any:
        writes = engine.start_in(conn, _new_execution(row, defn, started, now), values)
        ran.append(writes is not None)
        return writes

    started = _record_execution(conn, row, defn, now, hand_over)
    assert started is not None and len(ran) == 1
    return ExecKey(ACCOUNT, REGION, started.execution_id), ran[0]


def wait_forgotten(engine: PipelineEngine) -> None:
    deadline = time.monotonic() + 20
    while engine.active_count():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_first_decided_steps_commit_with_the_start(app: AppState) -> None:
    engine = engine_of(app)
    engine.start()
    count = count_transactions(engine)
    steps = [{"Name": "Check", "Type": "Condition", "Arguments": {
        "Conditions": [{"Type": "GreaterThan", "LeftValue": {"Get": "Parameters.N"}, "RightValue": 3}],
        "IfSteps": [{"Name": "TooBig", "Type": "Fail", "Arguments": {"ErrorMessage": "too big"}}],
        "ElseSteps": []}}]

    def start() -> tuple[ExecKey, bool, str]:
        with app.db.begin() as conn:
            key, ran = start_in(engine, conn, steps, [{"Name": "N", "Type": "Integer", "DefaultValue": 5}])
        # Read at once, before the loop handles the step's outcome: the Condition step is in the
        # start's commit; the Fail step it leads to comes after, in a transaction of its own.
        with app.db.read() as conn:
            rows = {r.step_name: r.status for r in load_steps(conn, key)}
        return key, ran, json.dumps(rows)

    key, ran, rows = on_loop(engine, start)
    assert ran
    assert json.loads(rows) == {"Check": "Succeeded"}
    wait_forgotten(engine)
    with app.db.read() as conn:
        execution = load_execution(conn, key)
        assert {r.step_name: r.status for r in load_steps(conn, key)} == {"Check": "Succeeded", "TooBig": "Failed"}
    assert (execution.status, execution.failure_reason) == ("Failed", "too big")
    assert count[0] == 2  # each step through the engine's tx: the first one was the start's transaction


def test_lone_fail_step_ends_the_execution_in_the_start_commit(app: AppState) -> None:
    engine = engine_of(app)
    engine.start()

    def start() -> tuple[ExecKey, bool, str]:
        with app.db.begin() as conn:
            key, ran = start_in(engine, conn, [{"Name": "F", "Type": "Fail", "Arguments": {"ErrorMessage": "x"}}])
        with app.db.read() as conn:
            execution = load_execution(conn, key)
            steps = load_steps(conn, key)
            return key, ran, json.dumps([execution.status, execution.failure_reason,
                                         execution.ended_at == execution.last_modified_at == steps[0].ended_at,
                                         [(s.step_name, s.status, s.failure_reason) for s in steps]])

    key, ran, seen = on_loop(engine, start)
    assert ran
    assert json.loads(seen) == ["Failed", "x", True, [["F", "Failed", "x"]]]
    wait_forgotten(engine)
    with app.db.read() as conn:
        assert load_execution(conn, key).status == "Failed"


def test_start_in_declines_what_the_engine_does_not_decide_at_once(app: AppState) -> None:
    engine = engine_of(app)
    engine.start()
    processing = {"Name": "P", "Type": "Processing", "Arguments": {}}
    reads_s3 = {"Name": "C", "Type": "Condition", "Arguments": {"Conditions": [{
        "Type": "Equals", "LeftValue": {"Std:JsonGet": {"PropertyFile": "f", "Path": "a"}}, "RightValue": 1}],
        "IfSteps": [], "ElseSteps": []}}

    def start(steps: list[dict[str, Any]]) -> bool:
        with app.db.begin() as conn:
            key, ran = start_in(engine, conn, steps)
            # Declined: the engine holds nothing of the execution. Checked before the commit: once
            # committed, the engine's own poll (the first one runs when it starts) may load it
            # like any other active execution.
            assert key not in engine._executions
            return ran

    assert not on_loop(engine, lambda: start([processing]))
    assert not on_loop(engine, lambda: start([{"Name": "F", "Type": "Fail", "Arguments": {}}, processing]))
    assert not on_loop(engine, lambda: start([reads_s3]))
    # A step whose expressions cannot be evaluated is recorded failed by the regular path.
    assert not on_loop(engine, lambda: start([{"Name": "F", "Type": "Fail", "Arguments": {
        "ErrorMessage": {"Std:Join": {"On": 1, "Values": ["a"]}}}}]))
    # Off the dispatcher's thread it never applies.
    with app.db.begin() as conn:
        assert not start_in(engine, conn, [{"Name": "F", "Type": "Fail", "Arguments": {}}])[1]


def test_a_start_that_does_not_commit_leaves_nothing(app: AppState) -> None:
    engine = engine_of(app)
    engine.start()

    def start() -> ExecKey:
        key = None
        with pytest.raises(RuntimeError), app.db.begin() as conn:
            key, ran = start_in(engine, conn, [{"Name": "F", "Type": "Fail", "Arguments": {"ErrorMessage": "x"}}])
            assert ran
            raise RuntimeError("the commit failed")
        assert key is not None
        engine.forget(key)
        return key

    key = on_loop(engine, start)
    wait_forgotten(engine)
    with app.db.read() as conn:
        assert load_execution(conn, key) is None
        assert load_steps(conn, key) == []
