"""Development tool: autogenerate the next Alembic revision.

Usage: python tools/new_migration.py "message" 0004 [--tables t1,t2]

With --tables only those tables (and their indexes) are considered, so work in progress
elsewhere in the tree does not leak into the revision. Review the generated file.
"""

import argparse
import tempfile

from alembic import command
from alembic.config import Config

from stratum.store.db import MIGRATIONS_DIR, Database

parser = argparse.ArgumentParser()
parser.add_argument("message")
parser.add_argument("rev_id")
parser.add_argument("--tables", default="")
args = parser.parse_args()

url = f"sqlite:///{tempfile.mkdtemp()}/x.db"
Database(url).migrate()  # bring a scratch database to head first
cfg = Config()
cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
cfg.set_main_option("sqlalchemy.url", url)
cfg.attributes["connection_url"] = url
if args.tables:
    cfg.attributes["include_tables"] = set(args.tables.split(","))
command.revision(cfg, message=args.message, autogenerate=True, rev_id=args.rev_id)
