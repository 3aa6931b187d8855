"""Schema migrations (Alembic) run from code, so `dvmap migrate` needs no alembic.ini."""
from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from geodata.db import normalise_url

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str) -> Config:
    """Alembic config pointing at this package's migrations and ``url``."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    # Alembic's config uses %-interpolation: escape percent-encoded passwords.
    cfg.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "heads") -> None:
    """Upgrade the database at ``url`` to ``revision``.

    Parameters
    ----------
    url : str
        SQLAlchemy URL of a role that may create objects (the schema owner).
    revision : str
        Target revision; ``heads`` (all branch heads) by default, so features that
        branch from the same parent migration need no merge revision.
    """
    command.upgrade(alembic_config(url), revision)


def current(url: str) -> str | None:
    """Return the database's current revision(s), comma-separated, or None when unmigrated."""
    from sqlalchemy import create_engine, pool
    from alembic.runtime.migration import MigrationContext

    engine = create_engine(normalise_url(url), poolclass=pool.NullPool)
    with engine.connect() as conn:
        heads = MigrationContext.configure(conn).get_current_heads()
    return ",".join(sorted(heads)) or None
