"""Finding the resources a share names, in the service that owns them.

RAM shares only what the owner really has: each ARN is parsed, checked for a shareable type and
the share's region, and looked up in its service's tables to get the canonical ARN.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import Connection

from stratum.services.ram import errors
from stratum.services.ram.permissions import ResourceType, resource_type_of

_ARN = re.compile(r"arn:aws[a-z-]*:([a-z0-9-]+):([a-z0-9-]*):([0-9]{12}|aws)?:(.+)")


@dataclass(frozen=True)
class SharedResource:
    arn: str  # canonical, as the owning service prints it
    owner_account: str
    region: str
    resource_type: ResourceType


def _find_pipeline(conn: Connection, arn: str) -> str | None:
    # Imported here: SageMaker imports RAM's access module, so the reverse import stays lazy.
    from stratum.services.sagemaker.arns import parse_pipeline_ref
    from stratum.services.sagemaker.pipelines.records import get_pipeline

    ref = parse_pipeline_ref(arn, "", "")
    if ref is None or "/" in ref.name_key:
        return None
    row = get_pipeline(conn, ref)
    return str(row.arn) if row is not None else None


_FINDERS = {"sagemaker:Pipeline": _find_pipeline}


def locate(conn: Connection, arn: str, owner: str, region: str) -> SharedResource:
    """The resource ``owner`` wants to share in ``region``, or the error RAM answers."""
    m = _ARN.fullmatch(arn)
    if m is None:
        raise errors.malformed_arn(f"The specified resource ARN {arn} is not valid. Verify the ARN and try again.")
    resource_type = resource_type_of(arn)
    if resource_type is None:
        raise errors.invalid_parameter(f"The resource {arn} is not of a type that can be shared. "
                                       "Use ListResourceTypes to see the shareable resource types.")
    if m.group(3) != owner:
        raise errors.not_permitted(f"The resource {arn} is not owned by account {owner}: a resource share can "
                                   "only share resources that its owner's account owns.")
    if m.group(2) != region:
        raise errors.invalid_parameter(f"The resource {arn} is in region {m.group(2) or '(none)'}; a resource "
                                       f"share in {region} can only share resources of that region.")
    canonical = _FINDERS[resource_type.name](conn, arn)
    if canonical is None:
        raise errors.unknown_resource(f"The resource {arn} could not be found.")
    return SharedResource(canonical, owner, region, resource_type)
