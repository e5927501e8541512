"""Claims: which server runs which pipeline execution or job, under a lease.

Several servers may share one database (PostgreSQL). Each background item — an execution with all
its steps, a job — is run by the one server whose claim row names it (``owner``). The owner's
renewer pushes ``expires_at`` of all its claims forward every third of the lease; a server that
dies stops renewing, and once a claim's lease has expired another server takes it over and resumes
or fails the work exactly as after a restart. A server that starts does not wait for the lease of
a predecessor it knows is dead (same machine and process namespace, process gone; on SQLite, any
other owner): a restart resumes at once, as it did before claims.

Claims are taken with statements that cannot both succeed: an insert that does nothing on a
conflict, and on PostgreSQL ``SELECT ... FOR UPDATE SKIP LOCKED`` then an update of the rows it
locked (on SQLite, whose write transactions take turns, the update's own condition is enough).
Every committed transition of claimed work first checks, in its own transaction, that this server
still holds the claim (``holds``; on PostgreSQL under a share lock, so a takeover cannot commit
between the check and the transition): a server that lost its claim writes nothing more.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import Connection, bindparam, delete, exists, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from stratum.store import direct
from stratum.store.db import Database
from stratum.store.tables import stratum_claims as claims_t

log = logging.getLogger("stratum.cluster")

EXECUTION = "execution"
JOB = "job"


class ClaimKey(NamedTuple):
    kind: str
    account_id: str
    region: str
    item_id: str


class LeaseLost(Exception):
    """This server no longer holds the claim on the work it was about to record."""


def _host_key() -> str:
    """The machine and process namespace this process runs in: a process id is only meaningful
    to another server with the same key (same boot of the same host, same pid namespace)."""
    parts = [socket.gethostname()]
    with contextlib.suppress(OSError):
        parts.append(Path("/proc/sys/kernel/random/boot_id").read_text().strip())
    with contextlib.suppress(OSError):
        parts.append(os.readlink("/proc/self/ns/pid"))
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:16]


def new_server_id() -> str:
    """``<random>-<pid>@<host key>``: random per process start, with what lets a server on the same
    machine tell that the process is gone (see Claims.is_dead)."""
    return f"{secrets.token_hex(6)}-{os.getpid()}@{_host_key()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# The statements of the hot paths (a claim taken with each StartPipelineExecution, checked with
# each transition on PostgreSQL, released with each end), run straight on the driver.
_VALUES = {name: bindparam(name) for name in ("kind", "account_id", "region", "item_id", "owner", "expires_at")}
_INSERT = direct.Statement(insert(claims_t).values(**_VALUES), variants={
    "sqlite": sqlite.insert(claims_t).values(**_VALUES).on_conflict_do_nothing(),
    "postgresql": postgresql.insert(claims_t).values(**_VALUES).on_conflict_do_nothing()})
_KEY = ((claims_t.c.kind == bindparam("k_kind")) & (claims_t.c.account_id == bindparam("k_account"))
        & (claims_t.c.region == bindparam("k_region")) & (claims_t.c.item_id == bindparam("k_item")))
_OWNER = select(claims_t.c.owner).where(_KEY)
_HOLDS = direct.Statement(_OWNER, variants={"postgresql": _OWNER.with_for_update(read=True)})
_RELEASE = direct.Statement(delete(claims_t).where(_KEY & (claims_t.c.owner == bindparam("k_owner"))))


def _params(key: ClaimKey) -> dict[str, str]:
    return {"k_kind": key.kind, "k_account": key.account_id, "k_region": key.region, "k_item": key.item_id}


def _where(key: ClaimKey) -> Any:
    c = claims_t.c
    return ((c.kind == key.kind) & (c.account_id == key.account_id) & (c.region == key.region)
            & (c.item_id == key.item_id))


class Claims:
    """This server's claims in one database."""

    def __init__(self, db: Database, lease_seconds: float, server_id: str | None = None) -> None:
        self.db = db
        self.lease = float(lease_seconds)
        self.server_id = server_id or new_server_id()
        self._pid = os.getpid()
        self._host = self.server_id.rpartition("@")[2]
        self._postgres = not db.is_sqlite
        # SQLite: one server per database (the lock file of stratum.server.cluster), so a claim
        # owned by anyone else was left by a server that is gone.
        self._single = db.is_sqlite

    # ---------------------------------------------------------------------------------- liveness
    def expiry(self) -> float:
        return time.time() + self.lease

    def is_dead(self, owner: str) -> bool:
        """Whether ``owner`` is known to be gone without waiting for its lease (used by a server's
        first look at its claims: in steady state the lease decides, whatever the machine)."""
        if owner == self.server_id:
            return False
        if self._single:
            return True
        head, _, host = owner.rpartition("@")
        if host != self._host:
            return False
        try:
            pid = int(head.rpartition("-")[2])
        except ValueError:
            return False
        return pid == self._pid or not _pid_alive(pid)

    # ------------------------------------------------------------- inside the caller's transaction
    def insert(self, conn: Connection, key: ClaimKey) -> bool:
        """Claim an item nobody claims (in the transaction that creates it); False if claimed."""
        values = {"kind": key.kind, "account_id": key.account_id, "region": key.region, "item_id": key.item_id,
                  "owner": self.server_id, "expires_at": self.expiry()}
        return _INSERT.rowcount(conn, values) == 1

    def holds(self, conn: Connection, key: ClaimKey) -> bool:
        """Whether this server holds the claim; on PostgreSQL the row stays share-locked until the
        transaction ends, so nobody takes the claim over meanwhile. A lease that expired without
        anyone taking it over (a renewal late under load) is still held: losing the work to
        nobody would only make this server run it again."""
        return _HOLDS.scalar(conn, _params(key)) == self.server_id

    def check(self, conn: Connection, key: ClaimKey) -> None:
        if not self.holds(conn, key):
            raise LeaseLost(f"{key.kind} {key.item_id} is no longer claimed by server {self.server_id}")

    def owned(self, db: Database, key: ClaimKey) -> OwnedTransaction:
        """A write transaction that first checks this server still holds ``key`` (LeaseLost if
        not): a transition of work another server took over writes nothing."""
        return OwnedTransaction(db, self, key)

    def release(self, conn: Connection, key: ClaimKey) -> None:
        _RELEASE.rowcount(conn, {**_params(key), "k_owner": self.server_id})

    def take(self, conn: Connection, key: ClaimKey, reap_dead: bool = False) -> bool:
        """Claim ``key`` if nobody holds it: no claim yet, its lease expired (or, with ``reap_dead``,
        its owner is dead), or it is this server's already (then renewed)."""
        if self.insert(conn, key):
            return True
        query = select(claims_t.c.owner, claims_t.c.expires_at).where(_where(key))
        if self._postgres:
            query = query.with_for_update(skip_locked=True)  # locked: its owner is using it
        row = conn.execute(query).first()
        if row is None:
            return False
        if row.owner != self.server_id and not self.claimable(row.owner, row.expires_at, reap_dead=reap_dead):
            return False
        changed = conn.execute(update(claims_t).where(_where(key) & (claims_t.c.owner == row.owner))
                               .values(owner=self.server_id, expires_at=self.expiry())).rowcount
        if changed and row.owner != self.server_id:
            log.warning("server %s took over %s %s from server %s (%s)", self.server_id, key.kind, key.item_id,
                        row.owner, "lease expired" if row.expires_at <= time.time() else "its process is gone")
        return bool(changed)

    # ----------------------------------------------------------------------- in a transaction of its own
    def acquire(self, key: ClaimKey, reap_dead: bool = False) -> bool:
        with self.db.begin() as conn:
            return self.take(conn, key, reap_dead)

    def owners(self, kind: str) -> dict[ClaimKey, tuple[str, float]]:
        """Every claim of ``kind``: key -> (owner, expires_at)."""
        c = claims_t.c
        with self.db.read() as conn:
            rows = conn.execute(select(c.kind, c.account_id, c.region, c.item_id, c.owner, c.expires_at)
                                .where(c.kind == kind)).all()
        return {ClaimKey(r.kind, r.account_id, r.region, r.item_id): (r.owner, r.expires_at) for r in rows}

    def claimable(self, owner: str, expires_at: float, now: float | None = None, reap_dead: bool = False) -> bool:
        """Whether a claim with this owner and lease may be taken over now."""
        if owner == self.server_id:
            return False
        if self._single:
            return True
        return expires_at <= (now if now is not None else time.time()) or (reap_dead and self.is_dead(owner))

    def take_over(self, kind: str, reap_dead: bool = False, limit: int = 200) -> list[tuple[ClaimKey, str]]:
        """Take over claims of ``kind`` whose lease expired (or, with ``reap_dead``, whose owner is
        dead): [(key, former owner)]. On PostgreSQL, rows another server is taking or using at this
        moment are skipped."""
        c = claims_t.c
        now = time.time()
        dead: list[str] = []
        if reap_dead or self._single:
            with self.db.read() as conn:
                others = {r.owner for r in conn.execute(select(c.owner).where(
                    (c.kind == kind) & (c.owner != self.server_id)).distinct())}
            dead = sorted(o for o in others if self._single or self.is_dead(o))
        condition = c.expires_at <= now
        if dead:
            condition = condition | c.owner.in_(dead)
        query = (select(c.kind, c.account_id, c.region, c.item_id, c.owner, c.expires_at)
                 .where((c.kind == kind) & (c.owner != self.server_id) & condition).limit(limit))
        if self._postgres:
            query = query.with_for_update(skip_locked=True)
        taken: list[tuple[ClaimKey, str]] = []
        with self.db.begin() as conn:
            for r in conn.execute(query).all():
                key = ClaimKey(r.kind, r.account_id, r.region, r.item_id)
                if conn.execute(update(claims_t).where(_where(key) & (c.owner == r.owner))
                                .values(owner=self.server_id, expires_at=self.expiry())).rowcount:
                    taken.append((key, r.owner))
        for key, former in taken:
            log.warning("server %s took over %s %s from server %s", self.server_id, key.kind, key.item_id, former)
        return taken

    def renew(self) -> set[ClaimKey]:
        """Push the lease of every claim of this server forward; returns the claims it holds."""
        c = claims_t.c
        with self.db.begin() as conn:
            rows = conn.execute(update(claims_t).where(c.owner == self.server_id).values(expires_at=self.expiry())
                                .returning(c.kind, c.account_id, c.region, c.item_id)).all()
        return {ClaimKey(*r) for r in rows}

    def relinquish(self) -> None:
        """At a clean shutdown: let another server take this server's claims at once."""
        with self.db.begin() as conn:
            conn.execute(update(claims_t).where(claims_t.c.owner == self.server_id).values(expires_at=0.0))

    def purge(self, kind: str, active: Callable[[Any], Any]) -> None:
        """Drop this server's claims of ``kind`` on items that are not active any more: ``active``
        maps the claims table to an EXISTS condition on the item's own table."""
        with self.db.begin() as conn:
            conn.execute(delete(claims_t).where((claims_t.c.kind == kind) & (claims_t.c.owner == self.server_id)
                                                & ~exists(active(claims_t))))


class Renewer:
    """A thread that renews this server's claims every third of the lease and tells listeners
    which claims it holds (a listener drops work whose claim it no longer holds)."""

    name = "claims-renewer"

    def __init__(self, claims: Claims) -> None:
        self.claims = claims
        self.interval = max(0.2, claims.lease / 3)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._listeners: list[Callable[[set[ClaimKey], float], None]] = []

    def listen(self, fn: Callable[[set[ClaimKey], float], None]) -> None:
        """``fn(held, started)``: the claims held after a renewal begun at monotonic ``started``."""
        self._listeners.append(fn)

    def start(self) -> None:
        if self._thread is not None:
            return
        log.info("server id %s (lease %.1f s)", self.claims.server_id, self.claims.lease)
        self._thread = threading.Thread(target=self._run, name="claims-renewer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        try:
            self.claims.relinquish()
        except Exception:
            log.exception("releasing the claims of server %s failed", self.claims.server_id)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            started = time.monotonic()
            try:
                held = self.claims.renew()
            except Exception:
                log.exception("renewing the claims of server %s failed", self.claims.server_id)
                continue
            for fn in self._listeners:
                try:
                    fn(held, started)
                except Exception:
                    log.exception("claims listener failed")


class OwnedTransaction:
    """Claims.owned's transaction: the claim is checked before the caller's statements."""

    __slots__ = ("db", "claims", "key", "cm")

    def __init__(self, db: Database, claims: Claims, key: ClaimKey) -> None:
        self.db, self.claims, self.key = db, claims, key

    def __enter__(self) -> Connection:
        self.cm = self.db.begin()
        conn = self.cm.__enter__()
        try:
            self.claims.check(conn, self.key)
        except BaseException as exc:
            self.cm.__exit__(type(exc), exc, exc.__traceback__)
            raise
        return conn

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> Any:
        return self.cm.__exit__(kind, exc, tb)
