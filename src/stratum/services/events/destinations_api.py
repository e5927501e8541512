"""EventBridge API for connections and API destinations: Create / Describe / List / Update / Delete
of each, and DeauthorizeConnection. Each authorizes the action on the resource's ARN
(``arn:aws:events:<region>:<account>:connection/<name>/<id>``, ``.../api-destination/<name>/<id>``).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, insert, select, update

from stratum.protocol.errors import ServiceError
from stratum.server.context import RequestContext
from stratum.services.events import buses, destinations
from stratum.services.events.rules_api import _page
from stratum.services.events.tables import events_api_destinations, events_connections

ACTION = "events:"
_AUTH_KEYS = {"API_KEY": "ApiKeyAuthParameters", "BASIC": "BasicAuthParameters",
              "OAUTH_CLIENT_CREDENTIALS": "OAuthParameters"}


def _now() -> datetime:
    return datetime.now(UTC)


def _arn(ctx: RequestContext, kind: str, name: str) -> str:
    return f"arn:aws:events:{ctx.region}:{ctx.account_id}:{kind}/{name}/{uuid.uuid4()}"


def _pattern(ctx: RequestContext, kind: str, name: str) -> str:
    """The resource a call names before its ARN (with its id) is known."""
    return f"arn:aws:events:{ctx.region}:{ctx.account_id}:{kind}/{name}"


def _check_auth(auth_type: str, params: dict[str, Any]) -> None:
    key = _AUTH_KEYS.get(auth_type)
    if key is None or not params.get(key):
        raise buses.validation(f"{key or 'AuthParameters'} must be specified for AuthorizationType {auth_type}.")
    others = [k for k in _AUTH_KEYS.values() if k != key and params.get(k)]
    if others:
        raise buses.validation(f"Only {key} may be specified for AuthorizationType {auth_type}.")
    if auth_type == "OAUTH_CLIENT_CREDENTIALS":
        oauth = params[key]
        if not oauth.get("AuthorizationEndpoint", "").startswith(("https://", "http://")):
            raise buses.validation("AuthorizationEndpoint must be an HTTP(S) URL.")


def _connection_out(row: dict[str, Any], full: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"ConnectionArn": row["arn"], "ConnectionState": row["state"],
                           "CreationTime": row["created_at"], "LastModifiedTime": row["updated_at"]}
    if row.get("authorized_at"):
        out["LastAuthorizedTime"] = row["authorized_at"]
    if full:
        out.update({"Name": row["name"], "AuthorizationType": row["authorization_type"],
                    "AuthParameters": row["auth"],
                    "SecretArn": row["arn"].replace(":events:", ":secretsmanager:", 1).replace(
                        ":connection/", ":secret:events!connection/", 1)})
        if row.get("description"):
            out["Description"] = row["description"]
    return out


def _destination_out(row: dict[str, Any], full: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"ApiDestinationArn": row["arn"], "ApiDestinationState": row["state"],
                           "CreationTime": row["created_at"], "LastModifiedTime": row["updated_at"]}
    if full:
        out.update({"Name": row["name"], "ConnectionArn": row["connection_arn"],
                    "InvocationEndpoint": row["endpoint"], "HttpMethod": row["http_method"]})
        if row.get("rate_limit"):
            out["InvocationRateLimitPerSecond"] = row["rate_limit"]
        if row.get("description"):
            out["Description"] = row["description"]
    return out


class DestinationsApi:
    """Mixed into EventsProvider (which supplies ``app``)."""

    app: Any

    # -------------------------------------------------------------------------------- connections
    def create_connection(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        name = params["Name"]
        ctx.authorize(ACTION + "CreateConnection", _pattern(ctx, "connection", name))
        auth_type = params["AuthorizationType"]
        _check_auth(auth_type, params["AuthParameters"])
        shown, secret = destinations.split_secrets(auth_type, params["AuthParameters"])
        arn, now = _arn(ctx, "connection", name), _now()
        with self.app.db.begin() as conn:
            if destinations.get_connection(conn, ctx.account_id, ctx.region, name) is not None:
                raise ServiceError("ResourceAlreadyExistsException", f"Connection {name} already exists.", 400)
            row = {"account_id": ctx.account_id, "region": ctx.region, "name": name, "arn": arn,
                   "description": params.get("Description"), "authorization_type": auth_type, "auth": shown,
                   "secrets": destinations.seal(self.app, arn, secret), "state": "AUTHORIZED", "created_at": now,
                   "updated_at": now, "authorized_at": now}
            conn.execute(insert(events_connections).values(**row))
        return _connection_out(row)

    def _named(self, ctx: RequestContext, operation: str, kind: str, name: str) -> dict[str, Any]:
        """The caller's connection or API destination ``name``, ``operation`` authorized on it."""
        lookup = destinations.get_connection if kind == "connection" else destinations.get_destination
        with self.app.db.read() as conn:
            row = lookup(conn, ctx.account_id, ctx.region, name)
        ctx.authorize(ACTION + operation, row["arn"] if row else _pattern(ctx, kind, name))
        if row is None:
            raise destinations.not_found(kind, name)
        return row

    def _listed(self, ctx: RequestContext, operation: str, table: Any, params: dict[str, Any],
                filters: dict[str, Any]) -> tuple[list[dict[str, Any]], str | None]:
        """A page of the caller's rows of ``table`` by name: NamePrefix, then column == value."""
        ctx.authorize(ACTION + operation, "*")
        c = table.c
        query = select(table).where((c.account_id == ctx.account_id) & (c.region == ctx.region))
        if params.get("NamePrefix"):
            query = query.where(c.name.startswith(params["NamePrefix"], autoescape=True))
        for column, value in filters.items():
            if value:
                query = query.where(c[column] == value)
        with self.app.db.read() as conn:
            rows = [dict(r) for r in conn.execute(query.order_by(c.name)).mappings()]
        return _page(rows, lambda r: r["name"], params)

    def _connection(self, ctx: RequestContext, operation: str, name: str) -> dict[str, Any]:
        return self._named(ctx, operation, "connection", name)

    def describe_connection(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        return _connection_out(self._connection(ctx, "DescribeConnection", params["Name"]), full=True)

    def list_connections(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        page, token = self._listed(ctx, "ListConnections", events_connections, params,
                                   {"state": params.get("ConnectionState")})
        out: dict[str, Any] = {"Connections": [{**_connection_out(r), "Name": r["name"],
                                                "AuthorizationType": r["authorization_type"]} for r in page]}
        if token:
            out["NextToken"] = token
        return out

    def update_connection(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        row = self._connection(ctx, "UpdateConnection", params["Name"])
        auth_type = params.get("AuthorizationType") or row["authorization_type"]
        values: dict[str, Any] = {"updated_at": _now()}
        if params.get("Description") is not None:
            values["description"] = params["Description"]
        if params.get("AuthParameters") is not None or auth_type != row["authorization_type"]:
            given = dict(params.get("AuthParameters") or {})
            secret = destinations.unseal(self.app, row["arn"], row["secrets"])
            if auth_type == row["authorization_type"]:  # what is not given is kept, secrets included
                given = _merged(row["auth"], secret, auth_type, given)
            _check_auth(auth_type, given)
            shown, sealed = destinations.split_secrets(auth_type, given)
            values.update(authorization_type=auth_type, auth=shown, secrets=destinations.seal(self.app, row["arn"],
                                                                                               sealed))
            destinations.TOKENS.forget(row["arn"])
        with self.app.db.begin() as conn:
            conn.execute(update(events_connections).where(events_connections.c.arn == row["arn"]).values(**values))
        return _connection_out({**row, **values})

    def deauthorize_connection(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        row = self._connection(ctx, "DeauthorizeConnection", params["Name"])
        values = {"state": "DEAUTHORIZED", "updated_at": _now()}
        with self.app.db.begin() as conn:
            conn.execute(update(events_connections).where(events_connections.c.arn == row["arn"]).values(**values))
        destinations.TOKENS.forget(row["arn"])
        return _connection_out({**row, **values})

    def delete_connection(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        row = self._connection(ctx, "DeleteConnection", params["Name"])
        with self.app.db.begin() as conn:
            used = conn.execute(select(events_api_destinations.c.name).where(
                events_api_destinations.c.connection_arn == row["arn"])).first()
            if used is not None:
                raise ServiceError("ResourceConflictException", f"Connection {row['name']} is used by the API "
                                   f"destination {used[0]}.", 400)
            conn.execute(delete(events_connections).where(events_connections.c.arn == row["arn"]))
        destinations.TOKENS.forget(row["arn"])
        return _connection_out({**row, "state": "DELETING"})

    # ----------------------------------------------------------------------------- API destinations
    def _check_destination(self, ctx: RequestContext, connection_arn: str, endpoint: str) -> None:
        if not endpoint.startswith(("https://", "http://")):
            raise buses.validation("InvocationEndpoint must be an HTTP(S) URL.")
        with self.app.db.read() as conn:
            connection = destinations.connection_by_arn(conn, connection_arn)
        if connection is None or connection["account_id"] != ctx.account_id:
            raise ServiceError("ResourceNotFoundException", f"Connection '{connection_arn}' does not exist.", 400)

    def create_api_destination(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        name = params["Name"]
        ctx.authorize(ACTION + "CreateApiDestination", _pattern(ctx, "api-destination", name))
        self._check_destination(ctx, params["ConnectionArn"], params["InvocationEndpoint"])
        arn, now = _arn(ctx, "api-destination", name), _now()
        with self.app.db.begin() as conn:
            if destinations.get_destination(conn, ctx.account_id, ctx.region, name) is not None:
                raise ServiceError("ResourceAlreadyExistsException", f"ApiDestination {name} already exists.", 400)
            row = {"account_id": ctx.account_id, "region": ctx.region, "name": name, "arn": arn,
                   "description": params.get("Description"), "connection_arn": params["ConnectionArn"],
                   "endpoint": params["InvocationEndpoint"], "http_method": params["HttpMethod"],
                   "rate_limit": params.get("InvocationRateLimitPerSecond"), "state": "ACTIVE", "created_at": now,
                   "updated_at": now}
            conn.execute(insert(events_api_destinations).values(**row))
        return _destination_out(row)

    def _destination(self, ctx: RequestContext, operation: str, name: str) -> dict[str, Any]:
        return self._named(ctx, operation, "api-destination", name)

    def describe_api_destination(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        return _destination_out(self._destination(ctx, "DescribeApiDestination", params["Name"]), full=True)

    def list_api_destinations(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        page, token = self._listed(ctx, "ListApiDestinations", events_api_destinations, params,
                                   {"connection_arn": params.get("ConnectionArn")})
        out: dict[str, Any] = {"ApiDestinations": [_destination_out(r, full=True) for r in page]}
        if token:
            out["NextToken"] = token
        return out

    def update_api_destination(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        row = self._destination(ctx, "UpdateApiDestination", params["Name"])
        values: dict[str, Any] = {"updated_at": _now()}
        for key, column in (("Description", "description"), ("ConnectionArn", "connection_arn"),
                            ("InvocationEndpoint", "endpoint"), ("HttpMethod", "http_method"),
                            ("InvocationRateLimitPerSecond", "rate_limit")):
            if params.get(key) is not None:
                values[column] = params[key]
        self._check_destination(ctx, values.get("connection_arn", row["connection_arn"]),
                                values.get("endpoint", row["endpoint"]))
        with self.app.db.begin() as conn:
            conn.execute(update(events_api_destinations).where(events_api_destinations.c.arn == row["arn"])
                         .values(**values))
        return _destination_out({**row, **values})

    def delete_api_destination(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        row = self._destination(ctx, "DeleteApiDestination", params["Name"])
        with self.app.db.begin() as conn:
            conn.execute(delete(events_api_destinations).where(events_api_destinations.c.arn == row["arn"]))
        return {}


def _merged(shown: dict[str, Any], secret: dict[str, Any], auth_type: str, given: dict[str, Any]) -> dict[str, Any]:
    """UpdateConnection's AuthParameters over what the connection has (its secrets included)."""
    current: dict[str, Any] = {}
    if auth_type == "API_KEY":
        current["ApiKeyAuthParameters"] = {**shown.get("ApiKeyAuthParameters", {}), "ApiKeyValue": secret.get("ApiKeyValue")}
    elif auth_type == "BASIC":
        current["BasicAuthParameters"] = {**shown.get("BasicAuthParameters", {}), "Password": secret.get("Password")}
    else:
        oauth = dict(shown.get("OAuthParameters", {}))
        oauth["ClientParameters"] = {**oauth.get("ClientParameters", {}), "ClientSecret": secret.get("ClientSecret")}
        if secret.get("OAuthHttpParameters"):
            oauth["OAuthHttpParameters"] = secret["OAuthHttpParameters"]
        current["OAuthParameters"] = oauth
    if secret.get("InvocationHttpParameters"):
        current["InvocationHttpParameters"] = secret["InvocationHttpParameters"]
    for key, value in given.items():
        if isinstance(value, dict) and isinstance(current.get(key), dict):
            inner = dict(current[key])
            for k, v in value.items():
                inner[k] = {**inner[k], **v} if isinstance(v, dict) and isinstance(inner.get(k), dict) else v
            current[key] = inner
        else:
            current[key] = value
    return current
