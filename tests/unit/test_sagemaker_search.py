"""SageMaker Search expression evaluation, ARN parsing and NextToken handling (pure functions)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from stratum.protocol.errors import ServiceError
from stratum.services.sagemaker.arns import parse_execution_arn, parse_pipeline_ref, pipeline_arn
from stratum.services.sagemaker.paging import decode_token, encode_token, slice_page
from stratum.services.sagemaker.search import compile_expression, sort_records, values_at
from stratum.services.sagemaker.search_sources import schema

ACCOUNT = "123456789012"


def pipeline(name: str, created: datetime, **extra: Any) -> dict[str, Any]:
    return {"PipelineArn": pipeline_arn("us-east-1", ACCOUNT, name), "PipelineName": name,
            "PipelineStatus": "Active", "CreationTime": created, "LastModifiedTime": created,
            "ParallelismConfiguration": {"MaxParallelExecutionSteps": extra.pop("parallel", 1)},
            "Tags": extra.pop("tags", []), **extra}


RECORDS = [
    pipeline("alpha", datetime(2024, 1, 1, tzinfo=UTC), PipelineDescription="Train the Alpha model",
             tags=[{"Key": "team", "Value": "blue"}], parallel=4),
    pipeline("beta", datetime(2024, 6, 1, tzinfo=UTC), tags=[{"Key": "team", "Value": "red"}]),
    pipeline("gamma", datetime(2025, 1, 1, tzinfo=UTC), PipelineDescription="nothing", parallel=2),
]


def names(expr: dict[str, Any] | None, resource: str = "Pipeline", records: list[dict[str, Any]] = RECORDS) -> list[str]:
    predicate = compile_expression(expr, schema(resource))
    return [r.get("PipelineName") or r.get("PipelineExecutionArn", "") for r in records if predicate(r)]


@pytest.mark.parametrize(("flt", "expected"), [
    ({"Name": "PipelineName", "Operator": "Equals", "Value": "beta"}, ["beta"]),
    ({"Name": "PipelineName", "Value": "beta"}, ["beta"]),  # Value without Operator: Equals
    ({"Name": "PipelineName", "Operator": "NotEquals", "Value": "beta"}, ["alpha", "gamma"]),
    ({"Name": "PipelineDescription", "Operator": "Contains", "Value": "ALPHA"}, ["alpha"]),
    ({"Name": "PipelineDescription", "Operator": "Exists"}, ["alpha", "gamma"]),
    ({"Name": "PipelineDescription"}, ["alpha", "gamma"]),  # neither: Exists
    ({"Name": "PipelineDescription", "Operator": "NotExists"}, ["beta"]),
    ({"Name": "PipelineName", "Operator": "In", "Value": "alpha, gamma,zeta"}, ["alpha", "gamma"]),
    ({"Name": "CreationTime", "Operator": "GreaterThan", "Value": "2024-06-01T00:00:00"}, ["gamma"]),
    ({"Name": "CreationTime", "Operator": "GreaterThanOrEqualTo", "Value": "2024-06-01T00:00:00"}, ["beta", "gamma"]),
    ({"Name": "CreationTime", "Operator": "LessThan", "Value": "2024-06-01T00:00:00Z"}, ["alpha"]),
    ({"Name": "CreationTime", "Operator": "LessThanOrEqualTo", "Value": "1717200000"}, ["alpha", "beta"]),
    ({"Name": "ParallelismConfiguration.MaxParallelExecutionSteps", "Operator": "GreaterThan", "Value": "1"},
     ["alpha", "gamma"]),
    ({"Name": "ParallelismConfiguration.MaxParallelExecutionSteps", "Operator": "Equals", "Value": "2.0"}, ["gamma"]),
    ({"Name": "Tags.team", "Value": "blue"}, ["alpha"]),
    ({"Name": "Tags.team", "Operator": "Exists"}, ["alpha", "beta"]),
    ({"Name": "Tags.team", "Operator": "NotExists"}, ["gamma"]),
    ({"Name": "PipelineStatus", "Operator": "In", "Value": "Active,Deleting"}, ["alpha", "beta", "gamma"]),
])
def test_filter_operators(flt: dict[str, Any], expected: list[str]) -> None:
    assert names({"Filters": [flt]}) == expected


def test_filters_and_sub_expressions_combine() -> None:
    blue_or_red = {"Filters": [{"Name": "Tags.team", "Value": "blue"}, {"Name": "Tags.team", "Value": "red"}],
                   "Operator": "Or"}
    assert names(blue_or_red) == ["alpha", "beta"]
    assert names({"Filters": [{"Name": "PipelineDescription", "Operator": "Exists"}],
                  "SubExpressions": [blue_or_red]}) == ["alpha"]
    assert names({"Filters": [{"Name": "PipelineName", "Value": "gamma"}], "SubExpressions": [blue_or_red],
                  "Operator": "Or"}) == ["alpha", "beta", "gamma"]
    assert names(None) == ["alpha", "beta", "gamma"]


def test_nested_filters_match_one_element() -> None:
    executions = [
        {"PipelineExecutionArn": "e1", "PipelineParameters": [{"Name": "a", "Value": "1"}, {"Name": "b", "Value": "2"}]},
        {"PipelineExecutionArn": "e2", "PipelineParameters": [{"Name": "a", "Value": "2"}]},
        {"PipelineExecutionArn": "e3"},
    ]
    same = {"NestedFilters": [{"NestedPropertyName": "PipelineParameters", "Filters": [
        {"Name": "PipelineParameters.Name", "Value": "a"}, {"Name": "PipelineParameters.Value", "Value": "2"}]}]}
    assert names(same, "PipelineExecution", executions) == ["e2"]
    # Plain filters on list members match any element independently.
    loose = {"Filters": [{"Name": "PipelineParameters.Name", "Value": "a"},
                         {"Name": "PipelineParameters.Value", "Value": "2"}]}
    assert names(loose, "PipelineExecution", executions) == ["e1", "e2"]


@pytest.mark.parametrize("expr", [
    {"Filters": [{"Name": "NoSuchProperty", "Value": "x"}]},
    {"Filters": [{"Name": "Tags.", "Value": "x"}]},
    {"Filters": [{"Name": "PipelineName", "Operator": "GreaterThan", "Value": "a"}]},
    {"Filters": [{"Name": "CreationTime", "Operator": "Contains", "Value": "2024"}]},
    {"Filters": [{"Name": "CreationTime", "Operator": "Equals", "Value": "yesterday"}]},
    {"Filters": [{"Name": "ParallelismConfiguration.MaxParallelExecutionSteps", "Value": "many"}]},
    {"Filters": [{"Name": "PipelineName", "Operator": "Equals"}]},
    {"Filters": [{"Name": "ParallelismConfiguration", "Operator": "Equals", "Value": "x"}]},
    {"NestedFilters": [{"NestedPropertyName": "PipelineName", "Filters": [{"Name": "PipelineName", "Value": "a"}]}]},
    {"Operator": "And"},
])
def test_invalid_expressions_are_validation_errors(expr: dict[str, Any]) -> None:
    with pytest.raises(ServiceError) as exc:
        compile_expression(expr, schema("Pipeline"))
    assert exc.value.code == "ValidationException"


def test_sorting() -> None:
    s = schema("Pipeline")
    assert [r["PipelineName"] for r in sort_records(RECORDS, s, None, None)] == ["gamma", "beta", "alpha"]
    assert [r["PipelineName"] for r in sort_records(RECORDS, s, "PipelineName", "Ascending")] == [
        "alpha", "beta", "gamma"]
    # Records without the property go last, whatever the order ("n" sorts after "T").
    assert [r["PipelineName"] for r in sort_records(RECORDS, s, "PipelineDescription", "Descending")] == [
        "gamma", "alpha", "beta"]
    assert [r["PipelineName"] for r in sort_records(RECORDS, s, "PipelineDescription", "Ascending")] == [
        "alpha", "gamma", "beta"]
    assert [r["PipelineName"] for r in sort_records(RECORDS, s, "Tags.team", "Ascending")] == [
        "alpha", "beta", "gamma"]
    with pytest.raises(ServiceError):
        sort_records(RECORDS, s, "Tags", "Ascending")


def test_values_at() -> None:
    record = {"A": {"B": [{"C": 1}, {"C": 2}, {}]}, "Tags": [{"Key": "k.with.dots", "Value": "v"}]}
    assert values_at(record, "A.B.C") == [1, 2]
    assert values_at(record, "A.X") == []
    assert values_at(record, "Tags.k.with.dots") == ["v"]


def test_arns() -> None:
    assert pipeline_arn("us-east-1", ACCOUNT, "My-Pipe") == f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:pipeline/my-pipe"
    ref = parse_pipeline_ref("My-Pipe", ACCOUNT, "eu-west-1")
    assert ref is not None and (ref.account_id, ref.region, ref.name_key) == (ACCOUNT, "eu-west-1", "my-pipe")
    ref = parse_pipeline_ref("arn:aws:sagemaker:us-west-2:999999999999:pipeline/Other", ACCOUNT, "us-east-1")
    assert ref is not None and (ref.account_id, ref.region, ref.name_key) == ("999999999999", "us-west-2", "other")
    assert parse_pipeline_ref(f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:pipeline/a/execution/b", ACCOUNT,
                              "us-east-1") is None
    assert parse_pipeline_ref("bad name", ACCOUNT, "us-east-1") is None
    exe = parse_execution_arn(f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:pipeline/My-Pipe/execution/ABC123def456")
    assert exe is not None and (exe.pipeline_key, exe.execution_id) == ("my-pipe", "abc123def456")
    assert exe.arn == f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:pipeline/my-pipe/execution/abc123def456"
    assert parse_execution_arn(f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:pipeline/p") is None
    assert parse_execution_arn(f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:pipeline/p/execution/") is None


def test_tokens_are_bound_to_their_query() -> None:
    scope = {"k": "pipelines", "prefix": "a"}
    token = encode_token(20, scope)
    assert decode_token(token, scope) == 20
    assert decode_token(None, scope) == 0
    for bad_scope, bad_token in (({"k": "pipelines", "prefix": "b"}, token), (scope, "not-a-token"),
                                 (scope, encode_token(-1, scope))):
        with pytest.raises(ServiceError) as exc:
            decode_token(bad_token, bad_scope)
        assert exc.value.code == "ValidationException"
    page, nxt = slice_page(list(range(5)), 0, 2, scope)
    assert page == [0, 1] and nxt is not None and decode_token(nxt, scope) == 2
    page, nxt = slice_page(list(range(5)), 4, 2, scope)
    assert page == [4] and nxt is None
