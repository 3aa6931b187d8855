"""Alembic environment: runs the migrations against the URL passed in the config.

``target_metadata`` is the models' metadata (geodata.models), so ``alembic check``
(``dvmap migrate --check``) and ``alembic revision --autogenerate`` compare the
database with the models. What the comparison covers and leaves to the migrations
(RLS policies, triggers, functions, grants, event partitions, PostGIS' own tables)
is decided in geodata/models/autogen.py, one place for this file and the tests.
"""
from alembic import context
from sqlalchemy import create_engine, pool

from geodata.models.autogen import comparison_options

config = context.config


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url")
    connectable = config.attributes.get("connection")
    if connectable is not None:
        context.configure(connection=connectable, **comparison_options(connectable))
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, transaction_per_migration=True,
                          **comparison_options(connection))
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():  # pragma: no cover - we always migrate online
    raise SystemExit("offline migrations are not supported")
run_migrations_online()
