"""API destinations: connections (how to authorize) and destinations (where to send), and the
delivery of an event to one over HTTP, as EventBridge does it.

A connection's secrets (the API key's value, the basic-auth password, the OAuth client secret and
the invocation parameters marked IsValueSecret) are what AWS keeps in Secrets Manager; Stratum
seals them with the server's master key, bound to the connection's ARN, and no API answer shows
them. An OAuth client-credentials connection fetches its token from the authorization endpoint
when a delivery first needs one and keeps it until it expires (or the endpoint refuses it).
"""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select

from stratum.protocol.errors import ServiceError
from stratum.services.events.tables import events_api_destinations, events_connections

if TYPE_CHECKING:
    from stratum.server.app_state import AppState

TIMEOUT = 5.0  # seconds EventBridge waits for an API destination's answer
_SECRET_PARAMETERS = ("HeaderParameters", "QueryStringParameters", "BodyParameters")


def not_found(kind: str, name: str) -> ServiceError:
    return ServiceError("ResourceNotFoundException", f"Failed to describe the {kind}(s). {kind.capitalize()} "
                        f"'{name}' does not exist.", 400)


# -------------------------------------------------------------------------------------- secrets
def split_secrets(auth_type: str, params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """AuthParameters -> (what DescribeConnection shows, what is sealed)."""
    shown: dict[str, Any] = {}
    secret: dict[str, Any] = {}
    if auth_type == "API_KEY":
        api = params.get("ApiKeyAuthParameters") or {}
        shown["ApiKeyAuthParameters"] = {"ApiKeyName": api.get("ApiKeyName")}
        secret["ApiKeyValue"] = api.get("ApiKeyValue")
    elif auth_type == "BASIC":
        basic = params.get("BasicAuthParameters") or {}
        shown["BasicAuthParameters"] = {"Username": basic.get("Username")}
        secret["Password"] = basic.get("Password")
    else:
        oauth = params.get("OAuthParameters") or {}
        client = oauth.get("ClientParameters") or {}
        shown["OAuthParameters"] = {
            "ClientParameters": {"ClientID": client.get("ClientID")},
            "AuthorizationEndpoint": oauth.get("AuthorizationEndpoint"), "HttpMethod": oauth.get("HttpMethod"),
            **({"OAuthHttpParameters": _public(oauth["OAuthHttpParameters"])} if oauth.get("OAuthHttpParameters")
               else {})}
        secret["ClientSecret"] = client.get("ClientSecret")
        secret["OAuthHttpParameters"] = oauth.get("OAuthHttpParameters") or {}
    if params.get("InvocationHttpParameters"):
        shown["InvocationHttpParameters"] = _public(params["InvocationHttpParameters"])
        secret["InvocationHttpParameters"] = params["InvocationHttpParameters"]
    return shown, secret


def _public(http: dict[str, Any]) -> dict[str, Any]:
    """Invocation parameters with the values marked secret left out, as AWS describes them."""
    out: dict[str, Any] = {}
    for key in _SECRET_PARAMETERS:
        if http.get(key) is not None:
            out[key] = [{k: v for k, v in p.items() if not (k == "Value" and p.get("IsValueSecret"))}
                        for p in http[key]]
    return out


def seal(app: AppState, arn: str, secret: dict[str, Any]) -> bytes:
    from stratum.services.kms import crypto

    key = crypto.master_key(app.settings.master_key_path)
    return key.seal(json.dumps(secret).encode(), f"events-connection:{arn}".encode())


def unseal(app: AppState, arn: str, sealed: bytes) -> dict[str, Any]:
    from stratum.services.kms import crypto

    key = crypto.master_key(app.settings.master_key_path)
    return dict(json.loads(key.unseal(sealed, f"events-connection:{arn}".encode())))


# ------------------------------------------------------------------------------------- lookups
def _row(conn: Connection, table: Any, condition: Any) -> dict[str, Any] | None:
    row = conn.execute(select(table).where(condition)).mappings().first()
    return dict(row) if row is not None else None


def _named(table: Any, account: str, region: str, name: str) -> Any:
    return (table.c.account_id == account) & (table.c.region == region) & (table.c.name == name)


def get_connection(conn: Connection, account: str, region: str, name: str) -> dict[str, Any] | None:
    return _row(conn, events_connections, _named(events_connections, account, region, name))


def get_destination(conn: Connection, account: str, region: str, name: str) -> dict[str, Any] | None:
    return _row(conn, events_api_destinations, _named(events_api_destinations, account, region, name))


def connection_by_arn(conn: Connection, arn: str) -> dict[str, Any] | None:
    return _row(conn, events_connections, events_connections.c.arn == arn)


def destination_by_arn(conn: Connection, arn: str) -> dict[str, Any] | None:
    return _row(conn, events_api_destinations, events_api_destinations.c.arn == arn)


# ------------------------------------------------------------------------------------ delivery
class DeliveryFailed(Exception):
    def __init__(self, code: str, message: str, retryable: bool) -> None:
        super().__init__(message)
        self.code, self.message, self.retryable = code, message, retryable


class _Limiter:
    """InvocationRateLimitPerSecond: deliveries to one destination are spaced out to its rate."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next: dict[str, float] = {}

    def wait(self, arn: str, rate: int | None) -> None:
        if not rate:
            return
        with self._lock:
            now = time.monotonic()
            at = max(now, self._next.get(arn, 0.0))
            self._next[arn] = at + 1.0 / rate
        if at > now:
            time.sleep(at - now)


class _Tokens:
    """OAuth client-credentials tokens per connection ARN, until they expire."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[str, tuple[float, str]] = {}

    def get(self, arn: str, auth: dict[str, Any], secret: dict[str, Any]) -> str:
        with self._lock:
            hit = self._tokens.get(arn)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        oauth = auth["OAuthParameters"]
        client = oauth["ClientParameters"]["ClientID"]
        basic = base64.b64encode(f"{client}:{secret.get('ClientSecret') or ''}".encode()).decode()
        fields = {"grant_type": "client_credentials"}
        extra = secret.get("OAuthHttpParameters") or {}
        fields.update({p["Key"]: p["Value"] for p in extra.get("BodyParameters") or []})
        headers = {"Authorization": f"Basic {basic}", "Content-Type": "application/x-www-form-urlencoded"}
        headers.update({p["Key"]: p["Value"] for p in extra.get("HeaderParameters") or []})
        url = _with_query(oauth["AuthorizationEndpoint"], {p["Key"]: p["Value"]
                                                           for p in extra.get("QueryStringParameters") or []})
        method = oauth.get("HttpMethod") or "POST"
        body = urllib.parse.urlencode(fields).encode()
        if method == "GET":
            url, body = _with_query(url, fields), b""
        status, answer = _send(method, url, headers, body)
        if status // 100 != 2:
            raise DeliveryFailed("ConnectionAuthorizationFailed",
                                 f"The authorization endpoint answered {status}: {answer[:256]!r}", status >= 500)
        try:
            data = json.loads(answer)
            token = str(data["access_token"])
        except (ValueError, KeyError, TypeError):
            raise DeliveryFailed("ConnectionAuthorizationFailed",
                                 "The authorization endpoint's answer has no access_token.", False) from None
        lifetime = float(data.get("expires_in") or 3600)
        with self._lock:
            self._tokens[arn] = (time.monotonic() + max(lifetime - 30, 1), token)
        return token

    def forget(self, arn: str) -> None:
        with self._lock:
            self._tokens.pop(arn, None)


LIMITER = _Limiter()
TOKENS = _Tokens()


def _with_query(url: str, params: dict[str, str]) -> str:
    if not params:
        return url
    return url + ("&" if "?" in url else "?") + urllib.parse.urlencode(params)


def _send(method: str, url: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body if method not in ("GET", "HEAD") else None, method=method,
                                     headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310 - the user's endpoint
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()
    except (urllib.error.URLError, OSError) as exc:
        raise DeliveryFailed("ConnectionError", f"Could not reach {url}: {exc}", True) from None


def deliver(app: AppState, destination: dict[str, Any], connection: dict[str, Any], target: dict[str, Any],
            body: str) -> dict[str, Any]:
    """Send one event: the destination's method and endpoint (its `*`s replaced by the target's
    PathParameterValues), the connection's authorization and invocation parameters, then the
    target's HttpParameters. 2xx is delivered; 429 and 5xx are retried; any other answer is not."""
    secret = unseal(app, connection["arn"], connection["secrets"])
    auth = connection["auth"]
    headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "Amazon/EventBridge/ApiDestinations"}
    query: dict[str, str] = {}
    kind = connection["authorization_type"]
    if kind == "API_KEY":
        headers[auth["ApiKeyAuthParameters"]["ApiKeyName"]] = secret.get("ApiKeyValue") or ""
    elif kind == "BASIC":
        user = auth["BasicAuthParameters"]["Username"]
        headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{secret.get('Password') or ''}".encode()).decode()
    else:
        headers["Authorization"] = "Bearer " + TOKENS.get(connection["arn"], auth, secret)
    invocation = secret.get("InvocationHttpParameters") or {}
    headers.update({p["Key"]: p["Value"] for p in invocation.get("HeaderParameters") or []})
    query.update({p["Key"]: p["Value"] for p in invocation.get("QueryStringParameters") or []})
    extra_body = {p["Key"]: p["Value"] for p in invocation.get("BodyParameters") or []}
    http = target.get("HttpParameters") or {}
    headers.update(http.get("HeaderParameters") or {})
    query.update(http.get("QueryStringParameters") or {})
    endpoint = destination["endpoint"]
    for value in http.get("PathParameterValues") or []:
        endpoint = endpoint.replace("*", urllib.parse.quote(value, safe=""), 1)
    payload = body
    if extra_body:
        try:
            merged = json.loads(body)
            if isinstance(merged, dict):
                merged.update(extra_body)
                payload = json.dumps(merged)
        except ValueError:
            pass
    LIMITER.wait(destination["arn"], destination.get("rate_limit"))
    status, answer = _send(destination["http_method"], _with_query(endpoint, query), headers, payload.encode())
    if status == 401 and kind == "OAUTH_CLIENT_CREDENTIALS":
        TOKENS.forget(connection["arn"])  # the next attempt asks for a new token
    if status // 100 != 2:
        retryable = status == 429 or status >= 500 or (status == 401 and kind == "OAUTH_CLIENT_CREDENTIALS")
        raise DeliveryFailed("HttpError" if retryable else "SdkClientException",
                             f"The API destination answered {status}: {answer[:256]!r}", retryable)
    return {"StatusCode": status}
