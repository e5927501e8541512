"""Names and ARNs of model package groups and model packages.

Group ARNs keep the name as created (IAM policies name groups that way); package ARNs lower-case
the group or package name: ``model-package/<group>/<version>`` or ``model-package/<name>``.
A parameter that is a plain name designates the caller's account; an ARN designates its owner's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# The ArnOrName / VersionedArnOrName patterns accept any resource type; ours must be the right one.
_ARN = re.compile(r"arn:aws[a-z\-]*:sagemaker:([a-z0-9\-]*):([0-9]{12}):([a-z\-]*)/(.+)")
_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
_VERSION = re.compile(r"[0-9]{1,9}")


def group_arn(region: str, account: str, name: str) -> str:
    return f"arn:aws:sagemaker:{region}:{account}:model-package-group/{name}"


def versioned_package_arn(region: str, account: str, group_name: str, version: int) -> str:
    return f"arn:aws:sagemaker:{region}:{account}:model-package/{group_name.lower()}/{version}"


def unversioned_package_arn(region: str, account: str, name: str) -> str:
    return f"arn:aws:sagemaker:{region}:{account}:model-package/{name.lower()}"


def package_pattern_arn(region: str, account: str, group_name: str) -> str:
    """Every version of a group (what ListModelPackages on a group is authorized against)."""
    return f"arn:aws:sagemaker:{region}:{account}:model-package/{group_name.lower()}/*"


@dataclass(frozen=True)
class GroupRef:
    account_id: str
    region: str
    name: str  # as the caller wrote it; errors quote the ARN built from it

    @property
    def name_key(self) -> str:
        return self.name.lower()

    @property
    def arn(self) -> str:
        return group_arn(self.region, self.account_id, self.name)


@dataclass(frozen=True)
class PackageRef:
    account_id: str
    region: str
    name: str  # package name, or group name for a version
    version: int | None  # None for an unversioned package

    @property
    def resource_key(self) -> str:
        key = self.name.lower()
        return key if self.version is None else f"{key}/{self.version}"

    @property
    def arn(self) -> str:
        if self.version is None:
            return unversioned_package_arn(self.region, self.account_id, self.name)
        return versioned_package_arn(self.region, self.account_id, self.name, self.version)


def parse_group(value: str, caller_account: str, region: str) -> GroupRef | None:
    """A ModelPackageGroupName parameter (name or ARN); None if it cannot name a group."""
    if value.startswith("arn:"):
        m = _ARN.fullmatch(value)
        if m is None or m.group(3) != "model-package-group" or not _NAME.fullmatch(m.group(4)):
            return None
        return GroupRef(m.group(2), m.group(1), m.group(4))
    if not _NAME.fullmatch(value):
        return None
    return GroupRef(caller_account, region, value)


def parse_package(value: str, caller_account: str, region: str) -> PackageRef | None:
    """A ModelPackageName/ModelPackageArn parameter: "<name>", "<group>/<n>" or either one's ARN."""
    account, arn_region, path = caller_account, region, value
    if value.startswith("arn:"):
        m = _ARN.fullmatch(value)
        if m is None or m.group(3) != "model-package":
            return None
        account, arn_region, path = m.group(2), m.group(1), m.group(4)
    name, sep, version = path.partition("/")
    if not _NAME.fullmatch(name):
        return None
    if not sep:
        return PackageRef(account, arn_region, name, None)
    if not _VERSION.fullmatch(version) or int(version) < 1:
        return None
    return PackageRef(account, arn_region, name, int(version))
