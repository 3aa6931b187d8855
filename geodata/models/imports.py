"""Imports (0003): import reports, custom layers with their features, raster datasets."""
from __future__ import annotations

import datetime
from typing import Any, Optional

from geoalchemy2 import WKBElement
from sqlalchemy import CHAR, BigInteger, CheckConstraint, Double, ForeignKey, Index, Integer, Text, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from geodata.models.base import Base, geometry, in_list

#: import_report.target values
IMPORT_TARGETS = ("villages", "grids", "resources", "population", "sensors", "custom", "raster")
#: import_report.status values
IMPORT_STATUSES = ("imported", "refused", "failed", "already_imported")
#: names of custom layers and rasters
NAME_CHECK = "^[a-z][a-z0-9_]{1,39}$"


class ImportReport(Base):
    """One row per import attempt; a successful one is written with the data it merged."""

    __tablename__ = "import_report"
    __table_args__ = (
        CheckConstraint("file_sha256 ~ '^[0-9a-f]{64}$'", name="import_report_file_sha256_check"),
        CheckConstraint(in_list("target", IMPORT_TARGETS), name="import_report_target_check"),
        CheckConstraint(in_list("status", IMPORT_STATUSES), name="import_report_status_check"),
        CheckConstraint(in_list("converted_from", ("gcj02", "bd09")), name="import_report_converted_from_check"),
        # an import is merged once, even when two run at once
        Index("import_report_once_uq", "file_sha256", "target", "layer", unique=True,
              postgresql_where=text("status = 'imported'")),
        Index("import_report_time_idx", text("started_at DESC")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    file_sha256: Mapped[str] = mapped_column(CHAR(64))
    file_name: Mapped[str] = mapped_column(Text)
    file_size: Mapped[Optional[int]] = mapped_column(BigInteger)
    format: Mapped[Optional[str]] = mapped_column(Text)
    target: Mapped[str] = mapped_column(Text)
    #: custom layer / raster name, or the resource source; '' when the target has none
    layer: Mapped[str] = mapped_column(Text, server_default=text("''::text"))
    status: Mapped[str] = mapped_column(Text)
    reason_code: Mapped[Optional[str]] = mapped_column(Text)
    message_zh: Mapped[Optional[str]] = mapped_column(Text)
    message_en: Mapped[Optional[str]] = mapped_column(Text)
    encoding: Mapped[Optional[str]] = mapped_column(Text)
    encoding_source: Mapped[Optional[str]] = mapped_column(Text)
    source_crs: Mapped[Optional[str]] = mapped_column(Text)
    converted_from: Mapped[Optional[str]] = mapped_column(Text)
    rows_read: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    rows_imported: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    rows_repaired: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    rows_rejected: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    rows_flagged: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    counts: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    issues: Mapped[list[Any]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    issues_truncated: Mapped[bool] = mapped_column(server_default=text("false"))
    notes: Mapped[list[Any]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    options: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    village_id: Mapped[Optional[int]] = mapped_column(ForeignKey("village.id"))
    user_id: Mapped[Optional[int]] = mapped_column(Integer)
    created_by: Mapped[Optional[str]] = mapped_column(Text)
    duplicate_of: Mapped[Optional[int]] = mapped_column(BigInteger, ForeignKey("import_report.id"))
    started_at: Mapped[datetime.datetime] = mapped_column(server_default=text("now()"))
    finished_at: Mapped[Optional[datetime.datetime]]


class CustomLayer(Base):
    """A layer a department brought that has no table of its own."""

    __tablename__ = "custom_layer"
    __table_args__ = (
        CheckConstraint(f"name ~ '{NAME_CHECK}'", name="custom_layer_name_check"),
        CheckConstraint(in_list("geom_family", ("point", "line", "polygon")), name="custom_layer_geom_family_check"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(Text, unique=True)
    title_zh: Mapped[str] = mapped_column(Text)
    title_en: Mapped[str] = mapped_column(Text)
    geom_family: Mapped[str] = mapped_column(Text)
    fields: Mapped[list[Any]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    style: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    import_id: Mapped[Optional[int]] = mapped_column(BigInteger, ForeignKey("import_report.id"))
    created_at: Mapped[datetime.datetime] = mapped_column(server_default=text("now()"))
    updated_at: Mapped[datetime.datetime] = mapped_column(server_default=text("now()"))


class CustomFeature(Base):
    """A feature of a custom layer; NULL village = outside every village (county scope only)."""

    __tablename__ = "custom_feature"
    __table_args__ = (
        CheckConstraint("ST_IsValid(geom) AND NOT ST_IsEmpty(geom)", name="custom_feature_geom_check"),
        Index("custom_feature_geom_gix", "geom", postgresql_using="gist"),
        Index("custom_feature_layer_idx", "layer_id"),
        Index("custom_feature_village_idx", "village_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    layer_id: Mapped[int] = mapped_column(ForeignKey("custom_layer.id", ondelete="CASCADE"))
    village_id: Mapped[Optional[int]] = mapped_column(ForeignKey("village.id"))
    source_id: Mapped[Optional[str]] = mapped_column(Text)
    name: Mapped[Optional[str]] = mapped_column(Text)
    props: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    geom: Mapped[WKBElement] = mapped_column(geometry("GEOMETRY"))
    import_id: Mapped[Optional[int]] = mapped_column(BigInteger, ForeignKey("import_report.id"))


class RasterDataset(Base):
    """GeoTIFF metadata; the file is kept under ``DVMAP_DATA_DIR/rasters``."""

    __tablename__ = "raster_dataset"
    __table_args__ = (
        CheckConstraint(f"name ~ '{NAME_CHECK}'", name="raster_dataset_name_check"),
        CheckConstraint("width > 0", name="raster_dataset_width_check"),
        CheckConstraint("height > 0", name="raster_dataset_height_check"),
        CheckConstraint("band_count > 0", name="raster_dataset_band_count_check"),
        Index("raster_dataset_footprint_gix", "footprint", postgresql_using="gist"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(Text, unique=True)
    title_zh: Mapped[str] = mapped_column(Text)
    title_en: Mapped[str] = mapped_column(Text)
    file_sha256: Mapped[str] = mapped_column(CHAR(64))
    path: Mapped[str] = mapped_column(Text)
    driver: Mapped[str] = mapped_column(Text)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    band_count: Mapped[int] = mapped_column(Integer)
    dtypes: Mapped[list[str]] = mapped_column(ARRAY(Text))
    nodata: Mapped[Optional[float]]
    source_crs: Mapped[str] = mapped_column(Text)
    res_x: Mapped[float]
    res_y: Mapped[float]
    transform: Mapped[list[float]] = mapped_column(ARRAY(Double))
    band_descriptions: Mapped[Optional[list[str]]] = mapped_column(ARRAY(Text))
    footprint: Mapped[WKBElement] = mapped_column(geometry("POLYGON"))
    import_id: Mapped[Optional[int]] = mapped_column(BigInteger, ForeignKey("import_report.id"))
    created_at: Mapped[datetime.datetime] = mapped_column(server_default=text("now()"))
