"""The AWS managed permissions RAM offers and the resource types Stratum can share.

A managed permission is a policy template (Effect + Actions) bound to one resource type; when a
share is in force RAM turns it into a resource policy on every shared resource, with the consumer
account as principal (see ``access``). Names, ARNs and actions follow the RAM permission library
and the SageMaker developer guide ("Cross-account support for SageMaker Pipelines").
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

PERMISSION_ARN_PREFIX = "arn:aws:ram::aws:permission/"

_PIPELINE_READ = (
    "sagemaker:DescribePipeline",
    "sagemaker:DescribePipelineDefinitionForExecution",
    "sagemaker:DescribePipelineExecution",
    "sagemaker:ListPipelineExecutions",
    "sagemaker:ListPipelineExecutionSteps",
    "sagemaker:ListPipelineParametersForExecution",
    "sagemaker:Search",
)
_PIPELINE_EXECUTE = _PIPELINE_READ[:-1] + (
    "sagemaker:StartPipelineExecution",
    "sagemaker:StopPipelineExecution",
    "sagemaker:RetryPipelineExecution",
    "sagemaker:Search",
)


@dataclass(frozen=True)
class ResourceType:
    """A shareable resource type: its RAM name, owning service and ARN shape."""

    name: str  # sagemaker:Pipeline
    service: str  # sagemaker
    arn_service: str  # the service field of its ARNs
    arn_prefix: str  # the resource field's prefix, "pipeline/"
    region_scope: str = "REGIONAL"

    def matches(self, arn: str) -> bool:
        parts = arn.split(":", 5)
        return len(parts) == 6 and parts[2] == self.arn_service and parts[5].startswith(self.arn_prefix)

    def covered(self, arn: str) -> list[str]:
        """What sharing ``arn`` grants access to: a pipeline and, implicitly, all of its executions."""
        if self.name == "sagemaker:Pipeline":
            return [arn, f"{arn}/execution/*"]
        return [arn]


@dataclass(frozen=True)
class ManagedPermission:
    name: str
    resource_type: str
    actions: tuple[str, ...]
    is_resource_type_default: bool
    version: int = 1
    created_at: datetime = datetime(2022, 11, 29, tzinfo=UTC)

    @property
    def arn(self) -> str:
        return PERMISSION_ARN_PREFIX + self.name

    @property
    def template(self) -> str:
        """The permission text GetPermission returns: the policy minus Principal and Resource."""
        return json.dumps({"Effect": "Allow", "Action": list(self.actions)}, separators=(",", ":"))


RESOURCE_TYPES: dict[str, ResourceType] = {
    t.name: t for t in (ResourceType("sagemaker:Pipeline", "sagemaker", "sagemaker", "pipeline/"),)
}

PERMISSIONS: dict[str, ManagedPermission] = {
    p.arn: p for p in (
        ManagedPermission("AWSRAMDefaultPermissionSageMakerPipeline", "sagemaker:Pipeline", _PIPELINE_READ, True),
        ManagedPermission("AWSRAMPermissionSageMakerPipelineAllowExecution", "sagemaker:Pipeline",
                          _PIPELINE_EXECUTE, False),
    )
}


def resource_type_of(arn: str) -> ResourceType | None:
    for resource_type in RESOURCE_TYPES.values():
        if resource_type.matches(arn):
            return resource_type
    return None


def find_resource_type(name: str) -> ResourceType | None:
    """RAM compares the service part exactly and the type part case-insensitively."""
    service, _, kind = name.partition(":")
    for resource_type in RESOURCE_TYPES.values():
        t_service, _, t_kind = resource_type.name.partition(":")
        if service == t_service and kind.lower() == t_kind.lower():
            return resource_type
    return None


def default_permission(resource_type: str) -> ManagedPermission | None:
    for permission in PERMISSIONS.values():
        if permission.resource_type == resource_type and permission.is_resource_type_default:
            return permission
    return None


def actions_of(permission_arn: str) -> tuple[str, ...]:
    permission = PERMISSIONS.get(permission_arn)
    return permission.actions if permission else ()
