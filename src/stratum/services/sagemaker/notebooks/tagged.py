"""AddTags / ListTags / DeleteTags on notebook instances, lifecycle configurations and code
repositories (their ARNs are resolved here; stratum.services.sagemaker.tags does the rest)."""

from __future__ import annotations

from sqlalchemy import Connection, Table, select

from stratum.notebooks.tables import sagemaker_code_repositories as repos_t
from stratum.notebooks.tables import sagemaker_notebook_instances as instances_t
from stratum.notebooks.tables import sagemaker_notebook_lifecycle_configs as configs_t
from stratum.services.sagemaker import tags as tagging

_KINDS: dict[str, Table] = {"notebook-instance": instances_t, "notebook-instance-lifecycle-config": configs_t,
                            "code-repository": repos_t}


@tagging.register
def _notebook_resources(conn: Connection, arn: str, lock: bool) -> tagging.TagTarget | None:
    parts = arn.split(":", 5)
    if len(parts) < 6 or parts[2] != "sagemaker":
        return None
    kind, _, name = parts[5].partition("/")
    table = _KINDS.get(kind)
    if table is None or not name or "/" in name:
        return None
    c = table.c
    where = (c.account_id == parts[4]) & (c.region == parts[3]) & (c.name_key == name.lower())
    query = select(c.arn, c.tags).where(where)
    row = conn.execute(query.with_for_update() if lock else query).first()
    if row is None:
        raise tagging.not_found(arn)
    return tagging.TagTarget(row.arn, parts[4], list(row.tags or []), table, where)
