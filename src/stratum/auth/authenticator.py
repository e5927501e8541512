"""Resolves the access key of a signed request to an identity and checks the signature."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import select

from stratum.auth.chunked import decode_aws_chunked
from stratum.auth.errors import auth_error
from stratum.auth.identity import ANONYMOUS, Identity
from stratum.auth.payload import VerifiedPayload
from stratum.auth.sigv2 import check_expires, is_query_v2, parse_query_v2, verify_query_v2
from stratum.auth.sigv4 import SignedRequestInfo, SigV4Error, check_clock, parse_auth, verify
from stratum.protocol.http import HttpRequest
from stratum.services.iam.tables import iam_access_keys, iam_roles, iam_users, sts_sessions
from stratum.store.refreshed import RefreshedCache

if TYPE_CHECKING:
    from stratum.server.app_state import AppState


@dataclass(frozen=True)
class Credential:
    secret: str
    identity: Identity
    session_token: str | None = None
    expiration: datetime | None = None
    active: bool = True


class Authenticator:
    def __init__(self, app: AppState) -> None:
        self.app = app
        # access key -> its credential, for credential_cache_seconds (an unknown key is not cached)
        self._cache: RefreshedCache[str, Credential | None] = RefreshedCache(
            lambda: self.app.settings.credential_cache_seconds, keep_none=False)

    def invalidate(self, account_id: str | None = None) -> None:
        if account_id is None:
            self._cache.invalidate()
            return
        self._cache.invalidate(lambda _key, cred: cred is None or cred.identity.account_id == account_id)

    def lookup(self, access_key: str) -> Credential | None:
        return self._cache.get(access_key, lambda: self._load(access_key))

    def _load(self, access_key: str) -> Credential | None:
        with self.app.db.read() as conn:
            row = conn.execute(
                select(iam_access_keys.c.secret_access_key, iam_access_keys.c.status, iam_users)
                .join(iam_users, (iam_users.c.account_id == iam_access_keys.c.account_id)
                      & (iam_users.c.name == iam_access_keys.c.user_name))
                .where(iam_access_keys.c.access_key_id == access_key)
            ).mappings().first()
            if row is not None:
                ident = Identity(account_id=row["account_id"], arn=row["arn"], kind="user",
                                 principal_id=row["user_id"], access_key=access_key, user_name=row["name"],
                                 tags={t["Key"]: t["Value"] for t in row["tags"] or []})
                return Credential(row["secret_access_key"], ident, active=row["status"] == "Active")
            # A session lives only as long as its role: the join drops the session of a role that was
            # deleted (or deleted and created again: a new role ID), as AWS stops honouring it.
            srow = conn.execute(select(sts_sessions).join(
                iam_roles, (iam_roles.c.account_id == sts_sessions.c.account_id)
                & (iam_roles.c.name == sts_sessions.c.role_name) & (iam_roles.c.role_id == sts_sessions.c.role_id))
                .where(sts_sessions.c.access_key_id == access_key)).mappings().first()
            if srow is None:
                return None
            ident = Identity(
                account_id=srow["account_id"],
                arn=f"arn:aws:sts::{srow['account_id']}:assumed-role/{srow['role_name']}/{srow['session_name']}",
                kind="assumed-role", principal_id=f"{srow['role_id']}:{srow['session_name']}",
                access_key=access_key, role_name=srow["role_name"], role_arn=srow["role_arn"],
                session_name=srow["session_name"], session_policy=srow["session_policy"],
                session_policy_arns=tuple(srow["session_policy_arns"] or ()), expiration=srow["expiration"],
                tags=dict(srow["tags"] or {}))
            return Credential(srow["secret_access_key"], ident, srow["session_token"], srow["expiration"])

    def authenticate(self, request: HttpRequest, protocol: str) -> tuple[Identity, SignedRequestInfo | None]:
        """Verify the request's signature; for S3 streaming uploads also decode and verify the chunks
        (the request body is replaced by the decoded payload).

        Every form (SigV4 header, SigV4 query, SigV2 query, aws-chunked bodies, which ride on a
        SigV4 header) goes through :meth:`admit` before its signature is checked."""
        is_s3 = protocol == "rest-xml"
        if is_s3 and is_query_v2(request.query_string):
            return self._authenticate_query_v2(request, protocol), None
        try:
            info = parse_auth(request.method, request.raw_path, request.query_string, request.headers)
        except SigV4Error as exc:
            raise auth_error(exc.code, protocol, exc.message, exc.status) from None
        if info is None:
            if self.app.settings.permissive:
                return self._permissive_identity(), None
            if is_s3:
                return ANONYMOUS, None
            raise auth_error("MissingAuthenticationToken", protocol)
        if self.app.settings.permissive and self.lookup(info.access_key) is None:
            return self._permissive_identity(), info
        cred = self.admit(info.access_key, info.security_token, protocol,
                          lambda now: check_clock(info, now, is_s3))
        try:
            signing_key = verify(info, cred.secret, request.method, request.raw_path, request.query_string,
                                 request.headers, request.body, s3=is_s3, clock_checked=True,
                                 payload_follows=request.stream is not None)
            if request.stream is not None:  # verified as the handler reads it
                request.stream = VerifiedPayload(request.stream, request.headers, (info, signing_key))
            elif info.payload_hash.startswith("STREAMING-"):
                decoded_len = request.headers.get("x-amz-decoded-content-length")
                body, _trailers = decode_aws_chunked(
                    request.body, payload_hash=info.payload_hash, signing_key=signing_key,
                    seed_signature=info.signature, amz_date=info.amz_date,
                    scope=f"{info.date}/{info.region}/{info.service}/aws4_request",
                    decoded_length=int(decoded_len) if decoded_len and decoded_len.isdigit() else None)
                request.body = body
        except SigV4Error as exc:
            raise auth_error(exc.code, protocol, exc.message, exc.status) from None
        return cred.identity, info

    def admit(self, access_key: str, security_token: str | None, protocol: str,
              check_time: Callable[[float], None], *, now: float | None = None) -> Credential:
        """The checks every authentication path applies before its signature is verified, in one
        place so no path can skip one: the request is inside its time window (``check_time``: the
        SigV4 clock skew / X-Amz-Expires rule, or a SigV2 URL's Expires), the access key exists
        and is active, its principal still exists (a user's keys go with the user; a session's
        role must still be the role it was issued for), the session token is the key's own (and
        only a session key carries one), and the session has not expired."""
        now = time.time() if now is None else now
        try:
            check_time(now)
        except SigV4Error as exc:
            raise auth_error(exc.code, protocol, exc.message, exc.status) from None
        cred = self.lookup(access_key)
        if cred is None or not cred.active:
            raise auth_error("InvalidClientTokenId", protocol)
        if cred.session_token is not None:
            if security_token != cred.session_token:
                raise auth_error("InvalidClientTokenId", protocol)
            if cred.expiration is not None and cred.expiration.timestamp() <= now:
                raise auth_error("ExpiredToken", protocol)
        elif security_token:
            raise auth_error("InvalidClientTokenId", protocol)
        return cred

    def _authenticate_query_v2(self, request: HttpRequest, protocol: str) -> Identity:
        try:
            info = parse_query_v2(request.query_string)
        except SigV4Error as exc:
            raise auth_error(exc.code, protocol, exc.message, exc.status) from None
        cred = self.admit(info.access_key, info.security_token, protocol, lambda now: check_expires(info, now))
        try:
            # The canonical resource is the path-style path (S3 routes a virtual-hosted request
            # with its bucket prepended in route_path).
            verify_query_v2(info, cred.secret, request.method, request.route_path or request.raw_path,
                            request.query_string, request.headers, clock_checked=True)
        except SigV4Error as exc:
            raise auth_error(exc.code, protocol, exc.message, exc.status) from None
        return cred.identity

    def _permissive_identity(self) -> Identity:
        from stratum.services.organizations.accounts import default_admin_identity

        return default_admin_identity(self.app)
