"""SageMaker pipeline ARNs: building them the way the service does (name lower-cased) and parsing
the ARNs clients hand back."""

from __future__ import annotations

import re
from dataclasses import dataclass

# Account may be "aws" for service-managed pipelines in the model; Stratum only has real accounts.
_PIPELINE_ARN = re.compile(r"arn:aws[a-z\-]*:sagemaker:([a-z0-9\-]*):([0-9]{12}|aws):pipeline/(.+)")
_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,255}")


def pipeline_arn(region: str, account: str, name: str) -> str:
    return f"arn:aws:sagemaker:{region}:{account}:pipeline/{name.lower()}"


def execution_arn(pipeline_arn_: str, execution_id: str) -> str:
    return f"{pipeline_arn_}/execution/{execution_id}"


@dataclass(frozen=True)
class PipelineRef:
    """Where a PipelineName parameter (name or ARN) points."""

    account_id: str
    region: str
    name_key: str  # lower-cased name, the lookup key
    given_name: str  # as the caller wrote it (errors quote the ARN built from it)

    @property
    def arn(self) -> str:
        return pipeline_arn(self.region, self.account_id, self.name_key)


@dataclass(frozen=True)
class ExecutionRef:
    account_id: str
    region: str
    pipeline_key: str
    execution_id: str

    @property
    def pipeline_arn(self) -> str:
        return pipeline_arn(self.region, self.account_id, self.pipeline_key)

    @property
    def arn(self) -> str:
        return execution_arn(self.pipeline_arn, self.execution_id)


def parse_pipeline_ref(value: str, caller_account: str, region: str) -> PipelineRef | None:
    """Resolve a PipelineName that may be a name or a pipeline ARN; None if it cannot name a pipeline."""
    if value.startswith("arn:"):
        m = _PIPELINE_ARN.fullmatch(value)
        if m is None or not _NAME.fullmatch(m.group(3)):
            return None
        return PipelineRef(m.group(2), m.group(1), m.group(3).lower(), m.group(3))
    if not _NAME.fullmatch(value):
        return None
    return PipelineRef(caller_account, region, value.lower(), value)


def parse_execution_arn(value: str) -> ExecutionRef | None:
    m = _PIPELINE_ARN.fullmatch(value)
    if m is None:
        return None
    name, sep, execution_id = m.group(3).partition("/execution/")
    if not sep or not _NAME.fullmatch(name) or not execution_id or "/" in execution_id:
        return None
    return ExecutionRef(m.group(2), m.group(1), name.lower(), execution_id.lower())
