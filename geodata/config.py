"""Settings read from the environment, shared by every entry point.

geodata owns them (not map_app) because the database URL, the storage CRS and
the local cluster's location are persistence facts that etl/ and the CLI need too.
"""
from __future__ import annotations

import functools
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
#: WGS84 geographic (EPSG:4326): what GPS, GeoJSON readers and most outside files speak.
WGS84_SRID = 4326
#: Web Mercator (EPSG:3857): the tiles' CRS (Tianditu ``_w``, OSM), used for raster overlays.
WEB_MERCATOR_SRID = 3857

#: The county's clock when ``DVMAP_TIMEZONE`` is unset (China has one zone).
DEFAULT_TIMEZONE = "Asia/Shanghai"

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


#: Where root keeps the embedded cluster of a checkout the postgres user cannot enter.
RELOCATED_DATA_ROOT = Path("/var/lib/dvmap")


def postgres_blocked_folder(path: Path) -> Path | None:
    """As root, the first folder above ``path`` that the ``postgres`` user may not enter.

    Parameters
    ----------
    path : Path
        A data folder (it need not exist yet).

    Returns
    -------
    Path or None
        None when not root, when there is no ``postgres`` user, or when every folder
        on the way can be entered.
    """
    import pwd

    if os.geteuid() != 0:
        return None
    try:
        pw = pwd.getpwnam("postgres")
    except KeyError:
        return None
    groups = {pw.pw_gid, *os.getgrouplist("postgres", pw.pw_gid)}
    for folder in reversed(Path(path).resolve().parents):
        try:
            st = folder.stat()
        except OSError:
            break  # not made yet: mkdir makes it reachable
        if st.st_uid == pw.pw_uid:
            ok = st.st_mode & 0o100
        elif st.st_gid in groups:
            ok = st.st_mode & 0o010
        else:
            ok = st.st_mode & 0o001
        if not ok:
            return folder
    return None


@functools.lru_cache(maxsize=1)
def default_data_dir() -> Path:
    """``<checkout>/.dvmap``; as root, when the ``postgres`` user cannot reach it (a clone in
    ``/root`` or in a ``mktemp -d`` folder), ``/var/lib/dvmap/<hash of the checkout path>``.

    ``DVMAP_DATA_DIR`` overrides both; see :class:`Settings`.
    """
    import hashlib

    local = PROJECT_ROOT / ".dvmap"
    if postgres_blocked_folder(local) is None:
        return local
    return RELOCATED_DATA_ROOT / hashlib.sha256(str(PROJECT_ROOT).encode()).hexdigest()[:12]


class DataDirError(RuntimeError):
    """The data folder cannot be made or written (read-only file system, permissions)."""


def ensure_writable_dir(folder: Path) -> Path:
    """Make ``folder`` (with its parents) and check that a file can be written in it.

    Root ignores permission bits, so this writes a probe file instead of asking
    ``os.access``; a read-only file system (EROFS) refuses root too.

    Raises
    ------
    DataDirError
        With one bilingual line naming the folder and the reason.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise DataDirError(
            f"数据目录不可写 / data folder is not writable: {folder} ({reason}); "
            "请改用可写目录 DVMAP_DATA_DIR=… / set DVMAP_DATA_DIR to a writable folder"
        ) from exc
    return folder


def _default_port() -> int:
    """A private port derived from the data folder, so two checkouts never collide."""
    import zlib

    folder = Path(_env("DVMAP_DATA_DIR") or default_data_dir()).resolve()
    return 54330 + zlib.crc32(str(folder).encode()) % 900


@dataclass(frozen=True)
class Settings:
    """Everything configurable, from environment variables."""

    database_url: str | None = field(default_factory=lambda: _env("DATABASE_URL"))
    data_dir: Path = field(default_factory=lambda: Path(_env("DVMAP_DATA_DIR") or default_data_dir()))
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
    #: the zone every time shown to a person is in (stored times are UTC); see geodata.clock
    timezone: str = field(default_factory=lambda: _env("DVMAP_TIMEZONE", DEFAULT_TIMEZONE))
    debug: bool = field(default_factory=lambda: _env("DVMAP_DEBUG", "0") == "1")
    open311_read_key: bool = field(default_factory=lambda: _env("DVMAP_OPEN311_READ_KEY", "0") == "1")
    #: imports (etl/importers/archive.py Limits): what one upload may expand to, its entry count,
    #: and each feature's vertex and time budget
    import_max_expanded_mb: int = field(default_factory=lambda: int(_env("DVMAP_IMPORT_MAX_EXPANDED_MB", "1024")))
    import_max_entries: int = field(default_factory=lambda: int(_env("DVMAP_IMPORT_MAX_ENTRIES", "200")))
    import_max_vertices: int = field(default_factory=lambda: int(_env("DVMAP_IMPORT_MAX_VERTICES", "200000")))
    import_feature_seconds: float = field(default_factory=lambda: float(_env("DVMAP_IMPORT_FEATURE_SECONDS", "5")))
    #: field app (geodata/field): a grid's area within this distance of the week's patrol tracks is
    #: covered; grids below the share are flagged; track points older than the days are deleted
    patrol_buffer_m: float = field(default_factory=lambda: float(_env("DVMAP_PATROL_BUFFER_M", "50")))
    patrol_min_coverage: float = field(default_factory=lambda: float(_env("DVMAP_PATROL_MIN_COVERAGE", "0.6")))
    track_retention_days: int = field(default_factory=lambda: int(_env("DVMAP_TRACK_RETENTION_DAYS", "180")))
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
