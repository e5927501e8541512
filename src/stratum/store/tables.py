"""Cluster tables: which server runs which execution or job (claims), and the values every server
of one database must agree on (the master key's check value)."""

from sqlalchemy import Column, Float, Index, String, Table

from stratum.store.schema import metadata

# One row per execution or job some server runs. ``owner`` is that server's id (random per process
# start); ``expires_at`` (epoch seconds) is pushed forward by the owner's renewer while it lives.
# A claim whose lease expired, or whose owner is known dead, may be taken over by another server.
stratum_claims = Table(
    "stratum_claims", metadata,
    # execution | job
    Column("kind", String(16), primary_key=True),
    Column("account_id", String(12), primary_key=True),
    Column("region", String(32), primary_key=True),
    # An execution's execution_id; a job's job_id.
    Column("item_id", String(32), primary_key=True),
    Column("owner", String(64), nullable=False),
    Column("expires_at", Float, nullable=False),
    # The renewer updates every claim of one owner; the takeover looks for expired ones.
    Index("ix_stratum_claims_owner", "owner"),
    Index("ix_stratum_claims_expires", "kind", "expires_at"),
)

# Named values of the installation that every server checks at start (e.g. the master key's check
# value: a server started with another master key could not read what the others sealed).
stratum_cluster_settings = Table(
    "stratum_cluster_settings", metadata,
    Column("name", String(64), primary_key=True),
    Column("value", String(256), nullable=False),
)
