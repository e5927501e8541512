"""Resource share invitations: sent to principals that are outside the owner's organization (or
inside one that has not enabled sharing), answered by the receiving account.

An invitation is PENDING for seven days, then EXPIRED. EXPIRED is derived when an invitation is
read rather than written by a sweep, so it is exact without any background work.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from stratum.services.ram import errors
from stratum.services.ram.tables import ram_invitations as invitations_t
from stratum.services.ram.tables import ram_resource_shares as shares_t
from stratum.services.ram.tables import ram_share_principals as principals_t

INVITATION_TTL = timedelta(days=7)
INVITATION_ARN = re.compile(r"arn:aws[a-z-]*:ram:([a-z0-9-]+):([0-9]{12}):resource-share-invitation/([0-9a-fA-F-]{36})")

_WITH_SHARE = (select(invitations_t, shares_t.c.name.label("share_name"), shares_t.c.status.label("share_status"))
               .join(shares_t, shares_t.c.arn == invitations_t.c.share_arn))


def effective_status(row: Any, now: datetime) -> str:
    if row["status"] == "PENDING" and row["created_at"] + INVITATION_TTL <= now:
        return "EXPIRED"
    return str(row["status"])


def view(row: Any, now: datetime) -> dict[str, Any]:
    return {"resourceShareInvitationArn": row["arn"], "resourceShareName": row["share_name"],
            "resourceShareArn": row["share_arn"], "senderAccountId": row["sender_account_id"],
            "receiverAccountId": row["receiver_account_id"], "invitationTimestamp": row["created_at"],
            "status": effective_status(row, now)}


def invite(conn: Connection, share: dict[str, Any], receiver: str, now: datetime) -> str:
    arn = f"arn:aws:ram:{share['region']}:{share['account_id']}:resource-share-invitation/{uuid.uuid4()}"
    conn.execute(insert(invitations_t).values(
        arn=arn, share_arn=share["arn"], region=share["region"], sender_account_id=share["account_id"],
        receiver_account_id=receiver, status="PENDING", created_at=now, updated_at=now))
    return arn


def withdraw(conn: Connection, share_arn: str, receiver: str | None) -> None:
    """Drop unanswered invitations when the principal (or the whole share) goes away."""
    where = (invitations_t.c.share_arn == share_arn) & (invitations_t.c.status == "PENDING")
    if receiver is not None:
        where &= invitations_t.c.receiver_account_id == receiver
    conn.execute(delete(invitations_t).where(where))


def received(conn: Connection, receiver: str, region: str, arn: str, *, lock: bool = False) -> dict[str, Any]:
    """An invitation addressed to ``receiver``; any other looks like a missing one."""
    if INVITATION_ARN.fullmatch(arn) is None:
        raise errors.malformed_arn(f"The specified resource share invitation ARN {arn} is not valid. "
                                   "Verify the ARN and try again.")
    query = _WITH_SHARE.where(invitations_t.c.arn == arn)
    row = conn.execute(query.with_for_update(of=invitations_t) if lock else query).mappings().first()
    if row is None or row["receiver_account_id"] != receiver or row["region"] != region:
        raise errors.invitation_not_found(arn)
    return dict(row)


def _check_answerable(row: dict[str, Any], now: datetime) -> None:
    status = effective_status(row, now)
    if status == "ACCEPTED":
        raise errors.invitation_already_accepted(row["arn"])
    if status == "REJECTED":
        raise errors.invitation_already_rejected(row["arn"])
    if status == "EXPIRED":
        raise errors.invitation_expired(row["arn"])
    if row["share_status"] != "ACTIVE":
        raise errors.share_not_found(row["share_arn"])


def _answer(conn: Connection, row: dict[str, Any], status: str, principal_status: str, message: str | None,
            now: datetime) -> dict[str, Any]:
    conn.execute(update(invitations_t).where(invitations_t.c.arn == row["arn"]).values(status=status, updated_at=now))
    conn.execute(update(principals_t).where(
        (principals_t.c.share_arn == row["share_arn"]) & (principals_t.c.principal == row["receiver_account_id"])
        & (principals_t.c.status == "ASSOCIATING")).values(status=principal_status, status_message=message,
                                                            updated_at=now))
    return {**row, "status": status, "updated_at": now}


def accept(conn: Connection, row: dict[str, Any], now: datetime) -> dict[str, Any]:
    _check_answerable(row, now)
    return _answer(conn, row, "ACCEPTED", "ASSOCIATED", None, now)


def reject(conn: Connection, row: dict[str, Any], now: datetime) -> dict[str, Any]:
    _check_answerable(row, now)
    return _answer(conn, row, "REJECTED", "DISASSOCIATED", "The principal rejected the invitation.", now)


def list_received(conn: Connection, receiver: str, region: str, arns: list[str] | None,
                  share_arns: list[str] | None) -> list[dict[str, Any]]:
    query = _WITH_SHARE.where((invitations_t.c.receiver_account_id == receiver) & (invitations_t.c.region == region))
    if arns:
        query = query.where(invitations_t.c.arn.in_(arns))
    if share_arns:
        query = query.where(invitations_t.c.share_arn.in_(share_arns))
    return [dict(r) for r in conn.execute(query.order_by(invitations_t.c.created_at, invitations_t.c.arn)).mappings()]
