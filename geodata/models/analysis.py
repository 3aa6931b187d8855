"""Planners' analyses (0007): stored zonal statistics of a raster per village or grid."""
from __future__ import annotations

import datetime
import uuid
from typing import Optional

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from geodata.models.base import Base, in_list


class ZonalStat(Base):
    __tablename__ = "zonal_stat"
    __table_args__ = (
        CheckConstraint("band >= 1", name="zonal_stat_band_check"),
        CheckConstraint(in_list("level", ("village", "grid")), name="zonal_stat_level_check"),
        CheckConstraint("(level = 'grid') = (grid_uid IS NOT NULL)", name="zonal_stat_check"),
        # a rerun replaces the rows of the same raster, band, level and unit
        Index("zonal_stat_unit_uq", "raster_id", "band", "level", "unit_code", unique=True),
        Index("zonal_stat_village_idx", "village_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    raster_id: Mapped[int] = mapped_column(ForeignKey("raster_dataset.id", ondelete="CASCADE"))
    band: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    level: Mapped[str] = mapped_column(Text)
    village_id: Mapped[int] = mapped_column(ForeignKey("village.id"))
    grid_uid: Mapped[Optional[uuid.UUID]]
    unit_code: Mapped[str] = mapped_column(Text)
    sum: Mapped[Optional[float]]
    mean: Mapped[Optional[float]]
    max: Mapped[Optional[float]]
    pixels: Mapped[float] = mapped_column(server_default=text("0"))
    computed_at: Mapped[datetime.datetime] = mapped_column(server_default=text("now()"))
    computed_by: Mapped[Optional[str]] = mapped_column(Text)
