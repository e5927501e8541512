"""The hosting service's writes: instance rows and the endpoint transitions it decides.

Each transition is conditional on the endpoint's ``generation`` the supervisor acted on, so a
change the API recorded meanwhile (UpdateEndpoint, DeleteEndpoint...) is never overwritten: the
supervisor sees it on its next pass instead.
"""

from __future__ import annotations

import socket
from typing import Any

from sqlalchemy import Connection, Row, delete, insert, select, update

from stratum.hosting import events
from stratum.hosting.tables import sagemaker_endpoint_instances as instances_t
from stratum.hosting.tables import sagemaker_endpoints as endpoints_t
from stratum.jobs.store import now


def endpoints(conn: Connection, endpoint_ids: list[str]) -> dict[str, Row[Any]]:
    if not endpoint_ids:
        return {}
    rows = conn.execute(select(endpoints_t).where(endpoints_t.c.endpoint_id.in_(endpoint_ids))).all()
    return {r.endpoint_id: r for r in rows}


def active_endpoint_ids(conn: Connection) -> list[str]:
    return [r[0] for r in conn.execute(select(endpoints_t.c.endpoint_id))]


def instances(conn: Connection, endpoint_id: str) -> list[Row[Any]]:
    return list(conn.execute(select(instances_t).where(instances_t.c.endpoint_id == endpoint_id)))


def insert_instance(conn: Connection, *, instance_id: str, endpoint_id: str, deployment: int, variant: str,
                    hostnames: list[str], owner: str) -> None:
    at = now()
    for position, hostname in enumerate(hostnames):
        conn.execute(insert(instances_t).values(
            instance_id=instance_id, container=hostname, endpoint_id=endpoint_id, deployment=deployment,
            variant=variant, position=position, url=None, pid=None, marker=None, host=socket.gethostname(),
            owner=owner, status="Pending", drain_until=None, created_at=at, updated_at=at))


def set_instance(conn: Connection, instance_id: str, status: str, servers: dict[str, Any] | None = None,
                 marker: str | None = None, drain_until: float | None = None, owner: str | None = None) -> None:
    base: dict[str, Any] = {"status": status, "updated_at": now(), "drain_until": drain_until}
    if owner is not None:
        base["owner"] = owner
    if servers is None:
        conn.execute(update(instances_t).where(instances_t.c.instance_id == instance_id).values(**base))
        return
    for hostname, server in servers.items():
        conn.execute(update(instances_t).where((instances_t.c.instance_id == instance_id)
                                               & (instances_t.c.container == hostname))
                     .values(**base, url=server.url, pid=server.pid, marker=marker))


def delete_instance(conn: Connection, instance_id: str) -> None:
    conn.execute(delete(instances_t).where(instances_t.c.instance_id == instance_id))


def _transition(conn: Connection, row: Row[Any], **values: Any) -> bool:
    c = endpoints_t.c
    changed = bool(conn.execute(update(endpoints_t).where((c.endpoint_id == row.endpoint_id)
                                                          & (c.generation == row.generation))
                                .values(last_modified_at=now(), **values)).rowcount)
    if changed and values.get("status", row.status) != row.status:
        events.state_changed(conn, row.endpoint_id, now())
    return changed


def _settled(variants: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**v, "CurrentInstanceCount": v["DesiredInstanceCount"], "CurrentWeight": v["DesiredWeight"],
             "Status": None} for v in variants]


def deployed(conn: Connection, row: Row[Any]) -> bool:
    """The pending deployment is up: it serves from now on (Creating/Updating -> InService)."""
    pending = dict(row.pending)
    pending["Variants"] = _settled(pending["Variants"])
    return _transition(conn, row, serving=pending, pending=None, status="InService", failure_reason=None,
                       config_name=pending["ConfigName"])


def shifted(conn: Connection, row: Row[Any], traffic: dict[str, Any]) -> bool:
    """A blue/green update's traffic moved a step: ``traffic`` is the pending deployment's share."""
    return _transition(conn, row, pending={**row.pending, "Traffic": traffic})


def resized(conn: Connection, row: Row[Any]) -> bool:
    """UpdateEndpointWeightsAndCapacities is done: desired counts and weights are current."""
    serving = dict(row.serving)
    serving["Variants"] = _settled(serving["Variants"])
    return _transition(conn, row, serving=serving, status="InService", failure_reason=None)


def failed(conn: Connection, row: Row[Any], reason: str) -> bool:
    """A deployment could not come up. Creating: the endpoint is Failed. An update: the endpoint
    goes back to what it served (InService) with the reason in FailureReason, as SageMaker's
    rollback does."""
    if row.serving is None:
        pending = dict(row.pending)
        pending["Variants"] = [{**v, "Status": None} for v in pending["Variants"]]
        return _transition(conn, row, status="Failed", failure_reason=reason, pending=pending)
    serving = dict(row.serving)
    serving["Variants"] = [{**v, "DesiredInstanceCount": v["CurrentInstanceCount"],
                            "DesiredWeight": v["CurrentWeight"], "Status": None} for v in serving["Variants"]]
    return _transition(conn, row, serving=serving, pending=None, status="InService", failure_reason=reason)


def set_status(conn: Connection, row: Row[Any], status: str) -> bool:
    return _transition(conn, row, status=status)


def remove(conn: Connection, endpoint_id: str) -> None:
    conn.execute(delete(instances_t).where(instances_t.c.endpoint_id == endpoint_id))
    conn.execute(delete(endpoints_t).where(endpoints_t.c.endpoint_id == endpoint_id))


def instance_alive(db: Any, instance_id: str) -> bool:
    """Whether an instance still stands (the container-credentials endpoint serves its token only
    then): its rows exist, and it has not failed."""
    with db.read() as conn:
        return conn.execute(select(instances_t.c.instance_id).where(
            (instances_t.c.instance_id == instance_id) & (instances_t.c.status != "Failed")).limit(1)).first() is not None
