"""Checks and provisioning of the database a URL names, before the server or a command opens it:
a PostgreSQL database that does not exist yet is created (as `createdb` would), and a URL that
cannot be used is one line for the user, not a driver traceback."""

from __future__ import annotations

from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.pool import NullPool


class DatabaseUrlError(ValueError):
    """The database URL is malformed, names an unsupported database, or cannot be reached."""


def parse(url: str) -> URL:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise DatabaseUrlError(f"bad database URL {url!r}: expected sqlite:///PATH or "
                               "postgresql://USER@HOST:PORT/NAME") from None
    if parsed.drivername == "postgres" or parsed.drivername.startswith("postgres+"):
        parsed = parsed.set(drivername="postgresql" + parsed.drivername[len("postgres"):])
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise DatabaseUrlError(f"bad database URL {shown(parsed)}: Stratum runs on SQLite or PostgreSQL")
    if parsed.get_backend_name() == "postgresql" and not parsed.database:
        raise DatabaseUrlError(f"bad database URL {shown(parsed)}: name the database (…/stratum)")
    return parsed


def shown(url: URL | str) -> str:
    """The URL without its password, for messages."""
    return (url if isinstance(url, URL) else make_url(url)).render_as_string(hide_password=True)


def _driver_url(url: URL) -> URL:
    # psycopg 3 is the driver Stratum ships (as stratum.store.db)
    return url.set(drivername="postgresql+psycopg") if url.drivername == "postgresql" else url


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    return (str(orig).strip().splitlines() or [type(orig).__name__])[0]


def ensure_database(url: str) -> str | None:
    """Create the PostgreSQL database ``url`` names when it is missing; its name if created."""
    parsed = parse(url)
    if parsed.get_backend_name() != "postgresql":
        return None
    name = parsed.database
    assert name is not None
    # The server's maintenance database, as createdb connects to it.
    admin = create_engine(_driver_url(parsed).set(database="postgres"), isolation_level="AUTOCOMMIT",
                          poolclass=NullPool)
    try:
        with admin.connect() as conn:
            exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first()
            if exists:
                return None
            conn.execute(text('CREATE DATABASE "{}"'.format(name.replace('"', '""'))))
            return name
    except (NoSuchModuleError, ModuleNotFoundError) as exc:
        raise DatabaseUrlError(f"bad database URL {shown(parsed)}: {_first_line(exc)}") from None
    except SQLAlchemyError as exc:
        raise DatabaseUrlError(f"cannot create the database {name} at {shown(parsed)}: {_first_line(exc)} "
                               f"(create it with: createdb {name})") from None
    finally:
        admin.dispose()


def has_stratum_data(url: str) -> bool:
    """Whether the database exists and holds a Stratum organization (accounts)."""
    parsed = parse(url)
    engine = create_engine(_driver_url(parsed), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            if not inspect(conn).has_table("accounts"):
                return False
            return conn.execute(text("SELECT 1 FROM accounts LIMIT 1")).first() is not None
    except (NoSuchModuleError, ModuleNotFoundError) as exc:
        raise DatabaseUrlError(f"bad database URL {shown(parsed)}: {_first_line(exc)}") from None
    except SQLAlchemyError as exc:
        message = _first_line(exc)
        if "does not exist" in message:
            return False
        raise DatabaseUrlError(f"cannot open the database {shown(parsed)}: {message}") from None
    finally:
        engine.dispose()
