"""The service providers a server runs, one package per AWS service."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stratum.server.app_state import AppState
    from stratum.server.context import Provider

# service name -> "module:Class"
PROVIDERS = {
    "sts": "stratum.services.sts.provider:StsProvider",
    "iam": "stratum.services.iam.provider:IamProvider",
    "s3": "stratum.services.s3.provider:S3Provider",
    "kms": "stratum.services.kms.provider:KmsProvider",
    "sagemaker": "stratum.services.sagemaker.provider:SageMakerProvider",
    "ram": "stratum.services.ram.provider:RamProvider",
    "events": "stratum.services.events.provider:EventsProvider",
    "organizations": "stratum.services.organizations.provider:OrganizationsProvider",
    "cloudwatch": "stratum.services.cloudwatch.provider:CloudWatchProvider",
    "logs": "stratum.services.logs.provider:LogsProvider",
    "sagemaker-runtime": "stratum.services.sagemaker_runtime.provider:SageMakerRuntimeProvider",
    "lambda": "stratum.services.lambda_.provider:LambdaProvider",
    "sqs": "stratum.services.sqs.provider:SqsProvider",
}


def build_providers(app: AppState) -> dict[str, Provider]:
    providers: dict[str, Provider] = {}
    for service, target in PROVIDERS.items():
        module_name, _, class_name = target.partition(":")
        module = importlib.import_module(module_name)
        providers[service] = getattr(module, class_name)(app)
    return providers
