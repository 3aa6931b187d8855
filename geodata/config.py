"""Settings read from the environment, shared by every entry point.

geodata owns them (not map_app) because the database URL, the storage CRS and
the local cluster's location are persistence facts that etl/ and the CLI need too.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

#: Storage CRS: CGCS2000 geographic (EPSG:4490), the national standard that
#: departments' data and Tianditu use. It differs from WGS84 by centimetres, so
#: GeoJSON output (RFC 7946, lon/lat) carries the same numbers.
STORAGE_SRID = 4490
#: Metric CRS for areas, buffers and distances: CGCS2000 / 3-degree Gauss-Kruger
#: CM 120E — the zone the demo county (Deqing, ~120.0E) lies in.
METRIC_SRID = 4549

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def _default_port() -> int:
    """A private port derived from the data folder, so two checkouts never collide."""
    import zlib

    folder = Path(_env("DVMAP_DATA_DIR", str(PROJECT_ROOT / ".dvmap"))).resolve()
    return 54330 + zlib.crc32(str(folder).encode()) % 900


@dataclass(frozen=True)
class Settings:
    """Everything configurable, from environment variables."""

    database_url: str | None = field(default_factory=lambda: _env("DATABASE_URL"))
    data_dir: Path = field(
        default_factory=lambda: Path(_env("DVMAP_DATA_DIR", str(PROJECT_ROOT / ".dvmap")))
    )
    pg_port: int = field(default_factory=lambda: int(_env("DVMAP_PG_PORT", "0")) or _default_port())
    pg_bindir: str | None = field(default_factory=lambda: _env("DVMAP_PG_BINDIR"))
    tile_url: str | None = field(default_factory=lambda: _env("DVMAP_TILE_URL"))
    tile_attribution: str = field(
        default_factory=lambda: _env("DVMAP_TILE_ATTRIBUTION", "")
    )
    tianditu_key: str | None = field(default_factory=lambda: _env("TIANDITU_KEY"))
    host: str = field(default_factory=lambda: _env("DVMAP_HOST", "127.0.0.1"))
    port: int = field(default_factory=lambda: int(_env("DVMAP_PORT", "8050")))
    secret_key: str | None = field(default_factory=lambda: _env("DVMAP_SECRET_KEY"))
    debug: bool = field(default_factory=lambda: _env("DVMAP_DEBUG", "0") == "1")
    open311_read_key: bool = field(default_factory=lambda: _env("DVMAP_OPEN311_READ_KEY", "0") == "1")
    #: production mode: demo accounts refused, Secure cookies
    production: bool = field(default_factory=lambda: _env("DVMAP_ENV", "") == "production")
    secure_cookies: bool = field(
        default_factory=lambda: _env("DVMAP_SECURE_COOKIES", "1" if _env("DVMAP_ENV", "") == "production" else "0") == "1"
    )

    @property
    def embedded(self) -> bool:
        """True when the project runs its own PostgreSQL cluster."""
        return self.database_url is None


def get_settings() -> Settings:
    """Return settings read from the current environment."""
    return Settings()
