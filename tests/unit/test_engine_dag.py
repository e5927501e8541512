"""Execution progress over the compiled DAG: readiness, Condition branches skipped with their
dependents, restore after a restart or retry, and job names."""

from __future__ import annotations

import json
import re

from stratum.engine.graph import FAILED, PENDING, RUNNING, SKIPPED, SUCCEEDED, Progress
from stratum.engine.runner import job_name
from stratum.engine.state import ancestors
from stratum.services.sagemaker.pipelines.definition import parse_definition


def fail(name: str, **extra: object) -> dict[str, object]:
    return {"Name": name, "Type": "Fail", "Arguments": {"ErrorMessage": name}, **extra}


DEFINITION = parse_definition(json.dumps({"Version": "2020-12-01", "Steps": [
    {"Name": "Start", "Type": "Lambda", "FunctionArn": "f", "Arguments": {}},
    {"Name": "Cond", "Type": "Condition", "Arguments": {
        "Conditions": [{"Type": "Equals", "LeftValue": {"Get": "Steps.Start.OutputParameters['x']"},
                        "RightValue": 1}],
        "IfSteps": [fail("Yes")],
        "ElseSteps": [{"Name": "No", "Type": "Lambda", "FunctionArn": "f", "Arguments": {}}]}},
    # Depends on the else branch through data: skipped along with it.
    {"Name": "AfterNo", "Type": "Lambda", "FunctionArn": "f",
     "Arguments": {"v": {"Get": "Steps.No.OutputParameters['y']"}}},
    fail("AfterAfterNo", DependsOn=["AfterNo"]),
    {"Name": "Side", "Type": "Lambda", "FunctionArn": "f", "Arguments": {}},
]}))


def progress() -> Progress:
    d = DEFINITION
    branches = {n: (s.if_steps, s.else_steps) for n, s in d.steps.items() if s.type == "Condition"}
    p = Progress(d.dag, d.topological_order(), branches)
    p.start()
    return p


def drain(p: Progress) -> list[str]:
    out = []
    while (name := p.pop_ready()) is not None:
        p.mark_running(name)
        out.append(name)
    return out


def test_ready_steps_in_document_order_then_dependents() -> None:
    p = progress()
    assert drain(p) == ["Start", "Side"]
    p.finish("Side", SUCCEEDED)
    assert drain(p) == []
    p.finish("Start", SUCCEEDED)
    assert drain(p) == ["Cond"]


def test_true_outcome_skips_else_branch_and_its_dependents() -> None:
    p = progress()
    drain(p)
    p.finish("Start", SUCCEEDED)
    drain(p)
    skipped = p.finish("Cond", SUCCEEDED, outcome=True)
    assert sorted(skipped) == ["AfterAfterNo", "AfterNo", "No"]
    assert drain(p) == ["Yes"]
    assert p.state["No"] == SKIPPED and p.state["AfterAfterNo"] == SKIPPED


def test_false_outcome_runs_else_branch_and_dependents() -> None:
    p = progress()
    drain(p)
    p.finish("Start", SUCCEEDED)
    drain(p)
    assert p.finish("Cond", SUCCEEDED, outcome=False) == ["Yes"]
    assert drain(p) == ["No"]
    p.finish("No", SUCCEEDED)
    assert drain(p) == ["AfterNo"]


def test_failed_step_blocks_its_dependents() -> None:
    p = progress()
    drain(p)
    p.finish("Start", FAILED)
    assert drain(p) == []
    assert p.state["Cond"] == PENDING


def test_restore_rebuilds_skips_and_readiness() -> None:
    p = progress()
    p.restore({"Start": SUCCEEDED, "Cond": SUCCEEDED, "Side": RUNNING}, {"Cond": True})
    assert p.state["No"] == SKIPPED and p.state["AfterNo"] == SKIPPED and p.state["AfterAfterNo"] == SKIPPED
    assert p.ready_names() == ["Yes"]
    p = progress()
    p.restore({"Start": SUCCEEDED, "Cond": SUCCEEDED, "No": FAILED}, {"Cond": False})
    assert p.ready_names() == ["Side"]
    assert p.state["Yes"] == SKIPPED and p.state["AfterNo"] == PENDING


def test_ancestors_include_enclosing_condition_and_data_sources() -> None:
    assert ancestors(DEFINITION, {"AfterAfterNo"}) == {"AfterNo", "No", "Cond", "Start"}
    assert ancestors(DEFINITION, {"Side"}) == set()


def test_job_names_are_deterministic_and_valid() -> None:
    a = job_name("abcdefghijkl", "Preprocess Abalone_Data", 1)
    assert a == job_name("abcdefghijkl", "Preprocess Abalone_Data", 1)
    assert a != job_name("abcdefghijkl", "Preprocess Abalone_Data", 2)
    assert a.startswith("pipelines-abcdefghijkl-Preprocess-Abalone-Data-")
    long = job_name("abcdefghijkl", "S" * 200, 3)
    for name in (a, long):
        assert len(name) <= 63 and re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}", name)
