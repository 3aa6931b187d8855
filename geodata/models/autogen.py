"""How Alembic compares the models with a database: one set of options for env.py and the tests.

Compared: tables, columns (type, nullability, server default, generated
expression), primary keys, foreign keys, unique constraints and indexes
(partial, INCLUDE, expression, GiST) of every table in ``public``.

Left to the migrations and out of the comparison, because SQLAlchemy's metadata
cannot express them (they are still tested, by the tests of what they do):

* the partitions of ``event`` (``event_y2020`` … ``event_default``): created by
  0002 per year, not a schema of their own; and the foreign keys PostgreSQL
  clones onto each partition of a referenced partitioned table;
* PostGIS' own tables (``spatial_ref_sys``; ``topology`` lives in its own schema)
  and views (``geometry_columns``, …), which the extension owns;
* row-level-security policies, triggers, SQL functions, grants, sequences
  (``event_id_seq``, the ``dvmap_gen_*`` generation counters) and storage
  settings: Alembic's autogenerate does not see them at all.

CHECK constraints are not compared by Alembic either; they are declared in the
models anyway, and tests/integration/test_models.py compares them with the
migrated database through a copy made from the models.
"""
from __future__ import annotations

from typing import Any

from alembic.autogenerate import produce_migrations
from alembic.operations import ops
from alembic.runtime.migration import MigrationContext
from geoalchemy2 import alembic_helpers
from sqlalchemy import text
from sqlalchemy.engine import Connection

from geodata.models import Base

#: tables and views of PostGIS itself, never models
POSTGIS_TABLES = frozenset({"spatial_ref_sys", "geometry_columns", "geography_columns",
                            "raster_columns", "raster_overviews"})


def partition_names(connection: Connection) -> frozenset[str]:
    """Names of the partitions (child tables) in the current schema.

    Parameters
    ----------
    connection : Connection
        An open connection to the database being compared.
    """
    rows = connection.execute(text(
        "SELECT c.relname FROM pg_class c WHERE c.relispartition"
        " AND c.relnamespace = current_schema()::regnamespace"
    ))
    return frozenset(r[0] for r in rows)


def comparison_options(connection: Connection) -> dict[str, Any]:
    """Keyword arguments for ``context.configure`` (env.py) and ``MigrationContext.configure``.

    Parameters
    ----------
    connection : Connection
        The connection the comparison reflects through (partition names are read from it).

    Returns
    -------
    dict
        ``target_metadata``, ``include_name``, ``include_object``, ``compare_type``,
        ``compare_server_default``, and GeoAlchemy2's ``render_item`` and
        ``process_revision_directives`` (geometry columns and indexes in generated
        migrations).
    """
    # Read on first use, during a comparison: a query here would open a transaction
    # on the connection before Alembic begins its own, and the upgrade run through
    # this same env.py would then be rolled back when the connection closes.
    known: dict[str, frozenset[str]] = {}

    def partitions() -> frozenset[str]:
        if "names" not in known:
            known["names"] = partition_names(connection)
        return known["names"]

    def include_name(name, type_, parent_names):
        # Partitions are not reflected at all: cheaper, and their clones of the parent's
        # indexes and constraints would otherwise show as unmodelled objects.
        if type_ == "table":
            return name not in POSTGIS_TABLES and name not in partitions()
        return True

    def include_object(obj, name, type_, reflected, compare_to):
        if not alembic_helpers.include_object(obj, name, type_, reflected, compare_to):
            return False
        if type_ == "foreign_key_constraint" and reflected:
            # PostgreSQL adds one foreign key per partition of a referenced partitioned table
            return obj.referred_table.name not in partitions()
        return True

    return {
        "target_metadata": Base.metadata,
        "include_name": include_name,
        "include_object": include_object,
        "compare_type": True,
        "compare_server_default": True,
        "render_item": alembic_helpers.render_item,
        "process_revision_directives": _directives(connection),
    }


def _directives(connection: Connection):
    def process(context, revision, directives):
        for script in directives:
            _drop_sequence_default_noise(connection, script.upgrade_ops)
            script.downgrade_ops = script.upgrade_ops.reverse()
        alembic_helpers.writer(context, revision, directives)

    return process


def _drop_sequence_default_noise(connection: Connection, upgrade_ops: ops.UpgradeOps) -> None:
    """Drop the one false difference Alembic reports: ``event.id``'s sequence default.

    Alembic's PostgreSQL reflection removes a ``nextval('<table>_<column>_seq')``
    default, taking the column for a serial, and then reports the model's
    (identical) default as new. ``event`` is partitioned, so ``id`` is a bigint
    with that default rather than a bigserial. A default is dropped from the diff
    only when the database really has it (read from ``pg_attrdef``).
    """
    for table_ops in list(upgrade_ops.ops):
        if not isinstance(table_ops, ops.ModifyTableOps):
            continue
        for op in list(table_ops.ops):
            seq = getattr(getattr(op.modify_server_default, "arg", None), "sequence", None) \
                if isinstance(op, ops.AlterColumnOp) else None
            if seq is None or op.existing_server_default is not None:
                continue
            actual = connection.execute(text(
                "SELECT pg_get_expr(d.adbin, d.adrelid) FROM pg_attrdef d"
                " JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum"
                " WHERE d.adrelid = to_regclass(:t) AND a.attname = :c"
            ), {"t": table_ops.table_name, "c": op.column_name}).scalar()
            if actual == f"nextval('{seq.name}'::regclass)":
                op.modify_server_default = False
                if not op.has_changes():
                    table_ops.ops.remove(op)
        if table_ops.is_empty():
            upgrade_ops.ops.remove(table_ops)


def schema_drift(connection: Connection) -> list:
    """Differences between the models and the database behind ``connection``.

    Parameters
    ----------
    connection : Connection
        A connection to a migrated database.

    Returns
    -------
    list
        Alembic's diff tuples (``("add_column", …)``, ``("remove_index", …)``, …);
        empty when the models and the database agree.
    """
    opts = comparison_options(connection)
    metadata = opts.pop("target_metadata")
    opts.pop("process_revision_directives")
    context = MigrationContext.configure(connection, opts=opts)
    upgrade_ops = produce_migrations(context, metadata).upgrade_ops
    _drop_sequence_default_noise(connection, upgrade_ops)
    return upgrade_ops.as_diffs()
