"""Event buses: naming, lookup (the implicit "default" bus included), resource-policy statements and
the durable event log."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from stratum.policy import MalformedPolicyDocument, parse_policy
from stratum.protocol.errors import ServiceError
from stratum.services.events.tables import events_buses, events_entries, events_rules, events_targets
from stratum.services.organizations.tables import accounts

DEFAULT_BUS = "default"
# EventBridge caps a bus's resource policy (PolicyLengthExceededException beyond it).
MAX_POLICY_CHARS = 10240
_BUS_ARN = re.compile(r"^arn:aws[\w-]*:events:([a-z0-9-]+):(\d{12}):event-bus/([/\.\-_A-Za-z0-9]+)$")
_BUS_NAME = re.compile(r"^[/\.\-_A-Za-z0-9]{1,256}$")


def now() -> datetime:
    return datetime.now(UTC)


def bus_arn(region: str, account_id: str, name: str) -> str:
    return f"arn:aws:events:{region}:{account_id}:event-bus/{name}"


@dataclass(frozen=True)
class BusRef:
    account_id: str
    region: str
    name: str

    @property
    def arn(self) -> str:
        return bus_arn(self.region, self.account_id, self.name)


def resolve(account_id: str, region: str, name_or_arn: str | None) -> BusRef:
    """A bus named in the caller's account and region, or any bus by ARN."""
    if not name_or_arn:
        return BusRef(account_id, region, DEFAULT_BUS)
    if name_or_arn.startswith("arn:"):
        m = _BUS_ARN.match(name_or_arn)
        if m is None:
            raise validation(f"Parameter {name_or_arn} is not valid. Reason: Provided Arn is not in correct format.")
        return BusRef(m.group(2), m.group(1), m.group(3))
    if not _BUS_NAME.match(name_or_arn):
        raise validation(f"Event bus name {name_or_arn} is not valid.")
    return BusRef(account_id, region, name_or_arn)


def validation(message: str) -> ServiceError:
    return ServiceError("ValidationException", message, 400)


def not_found(ref: BusRef) -> ServiceError:
    return ServiceError("ResourceNotFoundException", f"Event bus {ref.name} does not exist.", 400)


# ------------------------------------------------------------------------------------------ lookup
def get_bus(conn: Connection, ref: BusRef) -> dict[str, Any] | None:
    """The bus row; the default bus exists from the account's creation even without a row."""
    row = conn.execute(select(events_buses).where(
        (events_buses.c.account_id == ref.account_id) & (events_buses.c.region == ref.region)
        & (events_buses.c.name == ref.name))).mappings().first()
    if row is not None:
        return dict(row)
    if ref.name == DEFAULT_BUS:
        return implicit_default(conn, ref)
    return None


def implicit_default(conn: Connection, ref: BusRef) -> dict[str, Any] | None:
    created = conn.execute(select(accounts.c.created_at).where(accounts.c.id == ref.account_id)).scalar()
    if created is None:
        return None  # no such account: no bus either
    return {"account_id": ref.account_id, "region": ref.region, "name": DEFAULT_BUS, "arn": ref.arn,
            "description": None, "kms_key_identifier": None, "dead_letter_config": None, "log_config": None,
            "policy": None, "tags": [], "created_at": created, "updated_at": created, "implicit": True}


def list_buses(conn: Connection, account_id: str, region: str, prefix: str | None) -> list[dict[str, Any]]:
    rows = [dict(r) for r in conn.execute(select(events_buses).where(
        (events_buses.c.account_id == account_id) & (events_buses.c.region == region))
        .order_by(events_buses.c.name)).mappings()]
    if not any(r["name"] == DEFAULT_BUS for r in rows):
        default = implicit_default(conn, BusRef(account_id, region, DEFAULT_BUS))
        if default is not None:
            rows.append(default)
    rows.sort(key=lambda r: r["name"])
    return [r for r in rows if not prefix or r["name"].startswith(prefix)]


# ------------------------------------------------------------------------------------------ writes
def create_bus(conn: Connection, ref: BusRef, *, description: str | None, kms_key: str | None,
               dead_letter: dict[str, Any] | None, log_config: dict[str, Any] | None,
               tags: list[dict[str, str]]) -> dict[str, Any]:
    if get_bus(conn, ref) is not None:
        raise ServiceError("ResourceAlreadyExistsException", f"Event bus {ref.name} already exists.", 400)
    stamp = now()
    row = {"account_id": ref.account_id, "region": ref.region, "name": ref.name, "arn": ref.arn,
           "description": description, "kms_key_identifier": kms_key, "dead_letter_config": dead_letter,
           "log_config": log_config, "policy": None, "tags": tags, "created_at": stamp, "updated_at": stamp}
    conn.execute(insert(events_buses).values(**row))
    return row


def save_bus(conn: Connection, bus: dict[str, Any], **values: Any) -> None:
    """Update a bus; the implicit default bus gets its row on its first change."""
    values["updated_at"] = now()
    if bus.get("implicit"):
        row = {k: v for k, v in bus.items() if k != "implicit"}
        row.update(values)
        conn.execute(insert(events_buses).values(**row))
        bus.pop("implicit", None)
        return
    conn.execute(update(events_buses).where(
        (events_buses.c.account_id == bus["account_id"]) & (events_buses.c.region == bus["region"])
        & (events_buses.c.name == bus["name"])).values(**values))


def delete_bus(conn: Connection, ref: BusRef) -> None:
    scope = ((events_buses.c.account_id == ref.account_id) & (events_buses.c.region == ref.region)
             & (events_buses.c.name == ref.name))
    conn.execute(delete(events_buses).where(scope))
    # Events and rules of a deleted bus must not reappear on a new bus of the same name.
    conn.execute(delete(events_entries).where(
        (events_entries.c.account_id == ref.account_id) & (events_entries.c.region == ref.region)
        & (events_entries.c.bus_name == ref.name)))
    for table in (events_targets, events_rules):
        conn.execute(delete(table).where((table.c.account_id == ref.account_id) & (table.c.region == ref.region)
                                         & (table.c.bus_name == ref.name)))


# -------------------------------------------------------------------------------- resource policy
def permission_statement(ref: BusRef, principal: str, statement_id: str, action: str,
                         condition: dict[str, str] | None) -> dict[str, Any]:
    """The statement PutPermission adds, in EventBridge's own layout."""
    statement: dict[str, Any] = {
        "Sid": statement_id, "Effect": "Allow",
        "Principal": "*" if principal == "*" else {"AWS": f"arn:aws:iam::{principal}:root"},
        "Action": action, "Resource": ref.arn,
    }
    if condition:
        statement["Condition"] = {condition["Type"]: {condition["Key"]: condition["Value"]}}
    return statement


def statements(policy: str | None) -> list[dict[str, Any]]:
    if not policy:
        return []
    raw = json.loads(policy).get("Statement", [])
    return raw if isinstance(raw, list) else [raw]


def policy_text(statement_list: list[dict[str, Any]]) -> str | None:
    if not statement_list:
        return None
    return json.dumps({"Version": "2012-10-17", "Statement": statement_list}, separators=(",", ":"))


def check_policy(text: str) -> None:
    try:
        parse_policy(text, kind="resource")
    except MalformedPolicyDocument as exc:
        raise validation(f"This policy is not valid: {exc}") from None
    if len(text) > MAX_POLICY_CHARS:
        raise ServiceError("PolicyLengthExceededException",
                           f"Policy length {len(text)} exceeds the maximum of {MAX_POLICY_CHARS} characters.", 400)


# ------------------------------------------------------------------------------------------ events
def record_event(conn: Connection, ref: BusRef, *, source_account: str, source: str, detail_type: str,
                 detail: str, resources: list[str] | None = None, time: datetime | None = None) -> str:
    """Append an event to a bus's log (inside the caller's transaction) and return its id."""
    event_id = str(uuid.uuid4())
    stamp = now()
    conn.execute(insert(events_entries).values(
        event_id=event_id, account_id=ref.account_id, region=ref.region, bus_name=ref.name,
        source_account=source_account, source=source, detail_type=detail_type, detail=detail,
        resources=list(resources or []), time=time or stamp, ingested_at=stamp))
    return event_id


def envelope(row: Any) -> dict[str, Any]:
    """An event as EventBridge delivers it to rules and targets."""
    return {"version": "0", "id": row.event_id, "detail-type": row.detail_type, "source": row.source,
            "account": row.source_account, "time": row.time.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": row.region, "resources": list(row.resources or []), "detail": json.loads(row.detail)}


def events_on(conn: Connection, ref: BusRef, after_seq: int = 0, limit: int = 100) -> list[Any]:
    """Events of a bus in arrival order, for consumers that keep their own cursor."""
    return list(conn.execute(select(events_entries).where(
        (events_entries.c.account_id == ref.account_id) & (events_entries.c.region == ref.region)
        & (events_entries.c.bus_name == ref.name) & (events_entries.c.seq > after_seq))
        .order_by(events_entries.c.seq).limit(limit)))
