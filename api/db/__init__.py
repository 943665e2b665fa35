"""The shared store's one layer (SQLAlchemy Core): engines, migrations and locks.

Every store (jobs, variants, documents) opens `Database(target, store=..., migrations=...)`,
where `target` is a SQLite file (the default: one file per store in the data dir) or a
database URL (`LLM_DATABASE_URL`, PostgreSQL: all stores in one database). `db_lock(settings,
name)` serialises work across API replicas: a PostgreSQL advisory lock, or a file lock on one
host.
"""

from api.db.engine import Database, is_url
from api.db.locks import db_lock

__all__ = ["Database", "db_lock", "is_url"]
