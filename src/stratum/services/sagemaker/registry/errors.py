"""Model registry errors, worded like SageMaker's (clients and the SDK match on the phrases)."""

from __future__ import annotations

from stratum.protocol.errors import ServiceError
from stratum.services.sagemaker.errors import conflict, validation


def group_not_found(arn: str) -> ServiceError:
    # DescribeModelPackageGroup and friends declare no ResourceNotFound: SageMaker answers this.
    return validation(f"ModelPackageGroup {arn} does not exist.")


def group_missing_for_create() -> ServiceError:
    # CreateModelPackage into a group that does not exist; some clients compare the whole message.
    return validation("Model Package Group does not exist.")


def group_exists(arn: str) -> ServiceError:
    # The SDK's _create_resource treats a ValidationException containing "already exists" as
    # "use the existing one" (RegisterModel outside pipelines relies on it).
    return validation(f"Model Package Group already exists: {arn}")


def group_not_empty(arn: str) -> ServiceError:
    return conflict(f"Model Package Group {arn} cannot be deleted because it contains model packages. "
                    "Delete all model package versions in the group first.")


def no_group_policy(arn: str) -> ServiceError:
    return validation(f"Model Package Group {arn} does not have a resource policy.")


def package_not_found(arn: str) -> ServiceError:
    return validation(f"ModelPackage {arn} does not exist.")


def package_exists(arn: str) -> ServiceError:
    # Session.create_model_package_from_algorithm looks for "ModelPackage already exists".
    return validation(f"ModelPackage already exists: {arn}")
