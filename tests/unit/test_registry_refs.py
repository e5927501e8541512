"""Model registry names and ARNs: building them like SageMaker and parsing what clients pass."""

from __future__ import annotations

import pytest

from stratum.services.sagemaker.registry.refs import (
    GroupRef,
    PackageRef,
    group_arn,
    package_pattern_arn,
    parse_group,
    parse_package,
    unversioned_package_arn,
    versioned_package_arn,
)

ACCOUNT, OTHER, REGION = "111111111111", "222222222222", "us-east-1"


def test_arns_keep_group_case_and_lower_package_names() -> None:
    assert group_arn(REGION, ACCOUNT, "Churn") == f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package-group/Churn"
    assert versioned_package_arn(REGION, ACCOUNT, "Churn", 3) == \
        f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/churn/3"
    assert unversioned_package_arn(REGION, ACCOUNT, "Solo") == f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/solo"
    assert package_pattern_arn(REGION, ACCOUNT, "Churn").endswith(":model-package/churn/*")


def test_group_names_are_in_the_callers_account_and_arns_in_the_owners() -> None:
    assert parse_group("Churn", ACCOUNT, REGION) == GroupRef(ACCOUNT, REGION, "Churn")
    ref = parse_group(f"arn:aws:sagemaker:eu-west-1:{OTHER}:model-package-group/Churn", ACCOUNT, REGION)
    assert ref == GroupRef(OTHER, "eu-west-1", "Churn")
    assert ref is not None and ref.name_key == "churn"
    assert ref.arn == f"arn:aws:sagemaker:eu-west-1:{OTHER}:model-package-group/Churn"


@pytest.mark.parametrize("value", [
    f"arn:aws:sagemaker:{REGION}:{OTHER}:model-package/churn",  # wrong resource type
    f"arn:aws:sagemaker:{REGION}:{OTHER}:pipeline/churn",
    "bad_name", "-lead", "x" * 64,
])
def test_group_refs_that_name_no_group(value: str) -> None:
    assert parse_group(value, ACCOUNT, REGION) is None


def test_package_refs() -> None:
    assert parse_package("Solo", ACCOUNT, REGION) == PackageRef(ACCOUNT, REGION, "Solo", None)
    versioned = parse_package("Churn/12", ACCOUNT, REGION)
    assert versioned == PackageRef(ACCOUNT, REGION, "Churn", 12)
    assert versioned is not None and versioned.resource_key == "churn/12"
    assert versioned.arn == f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/churn/12"
    by_arn = parse_package(f"arn:aws:sagemaker:{REGION}:{OTHER}:model-package/churn/2", ACCOUNT, REGION)
    assert by_arn == PackageRef(OTHER, REGION, "churn", 2)
    assert parse_package(f"arn:aws:sagemaker:{REGION}:{OTHER}:model-package/solo", ACCOUNT, REGION) == \
        PackageRef(OTHER, REGION, "solo", None)


@pytest.mark.parametrize("value", [
    "churn/0", "churn/x", "churn/1/2", "churn/", f"arn:aws:sagemaker:{REGION}:{OTHER}:model-package-group/churn",
    "bad_name/1",
])
def test_package_refs_that_name_no_package(value: str) -> None:
    assert parse_package(value, ACCOUNT, REGION) is None
