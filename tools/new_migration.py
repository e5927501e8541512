"""Development tool: autogenerate the next Alembic revision.  Usage: python tools/new_migration.py "message" 0002"""
import sys
import tempfile

from alembic import command
from alembic.config import Config

from stratum.store.db import MIGRATIONS_DIR, Database

d = tempfile.mkdtemp()
url = f"sqlite:///{d}/x.db"
db = Database(url)
db.migrate()  # bring the temp db to head first
cfg = Config()
cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
cfg.set_main_option("sqlalchemy.url", url)
cfg.attributes["connection_url"] = url
command.revision(cfg, message=sys.argv[1], autogenerate=True, rev_id=sys.argv[2])
