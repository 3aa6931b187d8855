"""The models without a database: one storage CRS, the event table's partitioning, one role list."""
from __future__ import annotations

from geoalchemy2 import Geometry

from geodata.config import STORAGE_SRID
from geodata.models import Base
from geodata.models.autogen import comparison_options


def test_every_geometry_column_is_in_the_storage_crs_without_an_implicit_index():
    columns = [c for t in Base.metadata.tables.values() for c in t.columns if isinstance(c.type, Geometry)]
    assert len(columns) >= 10
    assert {c.type.srid for c in columns} == {STORAGE_SRID}
    # GeoAlchemy2's automatic idx_<table>_<col> would be an index the migrations never made
    assert not any(c.type.spatial_index for c in columns)
    assert not [i.name for t in Base.metadata.tables.values() for i in t.indexes if i.name.startswith("idx_")]


def test_event_is_partitioned_by_report_time():
    event = Base.metadata.tables["event"]
    assert event.dialect_options["postgresql"]["partition_by"] == "RANGE (reported_at)"
    assert [c.name for c in event.primary_key] == ["id", "reported_at"]


def test_role_check_lists_the_roles_of_geodata_users():
    from geodata.models.users import USER_ROLES
    from geodata.users import USER_ROLES as SERVICE_ROLES

    assert USER_ROLES == SERVICE_ROLES


def test_partitions_and_postgis_tables_are_left_out_of_the_comparison():
    class FakeConnection:
        def execute(self, _sql):
            return [("event_y2024",), ("event_default",)]

    opts = comparison_options(FakeConnection())
    assert opts["target_metadata"] is Base.metadata
    include = opts["include_name"]
    assert not include("event_y2024", "table", {})
    assert not include("spatial_ref_sys", "table", {})
    assert include("event", "table", {}) and include("some_new_table", "table", {})
