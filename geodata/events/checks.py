"""Input checks of the event service: pure functions, no database.

Each raises :class:`~geodata.events.errors.EventInputError` naming the field at
fault, so every entry point validates the same way before it touches a row.
"""
from __future__ import annotations

import hashlib
import math
import os
import re
import uuid
from datetime import date, datetime
from typing import NamedTuple

from sqlalchemy.orm import Session

from geodata.clock import as_local
from geodata.events.errors import EventInputError
from geodata.events.types import PHOTO_STEPS, POSITION_SOURCES, PhotoIn

__all__ = ["MAX_PHOTO_BYTES", "MAX_PHOTOS", "MAX_DESCRIPTION", "MAX_NOTE", "MAX_ACCURACY_M",
           "DEFAULT_BOUNDARY_M", "boundary_metres", "sniff_image"]

#: Largest photo accepted (bytes).
MAX_PHOTO_BYTES = 5 * 1024 * 1024
#: Most photos in one submission or transition.
MAX_PHOTOS = 9
MAX_DESCRIPTION = 2000
MAX_NOTE = 2000
#: Largest position accuracy radius accepted (m); the CHECKs of migration 0017 say the same.
MAX_ACCURACY_M = 100_000.0
DEFAULT_BOUNDARY_M = 30.0

_PHONE = re.compile(r"^[0-9+\-() ]{3,20}$")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,190}$")


class CheckedPhoto(NamedTuple):
    """A photo that passed the checks, with its digest and (optional) stamp."""

    content_type: str
    data: bytes
    sha256: str
    step: str | None = None
    lon: float | None = None
    lat: float | None = None
    accuracy_m: float | None = None


def boundary_metres() -> float:
    """Distance (m) to another grid under which an event is flagged 边界待确认.

    Read from ``DVMAP_BOUNDARY_M`` (default 30 m).
    """
    raw = os.environ.get("DVMAP_BOUNDARY_M", "")
    try:
        value = float(raw) if raw else DEFAULT_BOUNDARY_M
    except ValueError:
        value = DEFAULT_BOUNDARY_M
    return value if math.isfinite(value) and value >= 0 else DEFAULT_BOUNDARY_M


def sniff_image(data: bytes) -> str | None:
    """Content type of ``data`` from its magic bytes: JPEG, PNG or WebP, else None."""
    head = bytes(data[:12])
    if head[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


def _check_photos(photos) -> list[CheckedPhoto]:
    """Check bytes or :class:`PhotoIn` items; return them in order or raise EventInputError."""
    photos = list(photos or ())
    if len(photos) > MAX_PHOTOS:
        raise EventInputError(
            f"照片最多 {MAX_PHOTOS} 张。", f"At most {MAX_PHOTOS} photos.", "photos"
        )
    return [_check_photo(i, photo) for i, photo in enumerate(photos, 1)]


def _check_photo(i: int, photo) -> CheckedPhoto:
    stamp = photo if isinstance(photo, PhotoIn) else None
    raw = stamp.data if stamp else photo
    if not isinstance(raw, (bytes, bytearray, memoryview)):
        raise EventInputError(f"第 {i} 张照片不是文件内容。", f"Photo {i} is not file content.", "photos")
    data = bytes(raw)
    if not data:
        raise EventInputError(f"第 {i} 张照片是空文件。", f"Photo {i} is empty.", "photos")
    if len(data) > MAX_PHOTO_BYTES:
        raise EventInputError(
            f"第 {i} 张照片超过 5 MB({len(data) / 1048576:.1f} MB)。",
            f"Photo {i} is larger than 5 MB ({len(data) / 1048576:.1f} MB).",
            "photos",
        )
    ctype = sniff_image(data)
    if ctype is None:
        raise EventInputError(
            f"第 {i} 个文件不是 JPEG、PNG 或 WebP 图片。",
            f"File {i} is not a JPEG, PNG or WebP image.",
            "photos",
        )
    digest = hashlib.sha256(data).hexdigest()
    if stamp is None:
        return CheckedPhoto(ctype, data, digest)
    if stamp.step is not None and stamp.step not in PHOTO_STEPS:
        raise EventInputError(f"第 {i} 张照片的步骤无效:{stamp.step}", f"Photo {i} has an unknown step: {stamp.step}",
                              "photos")
    lon = lat = None
    try:
        if stamp.lon is not None or stamp.lat is not None:
            lon, lat = _check_coordinates(stamp.lon, stamp.lat)
        accuracy = _check_accuracy(stamp.accuracy_m)
    except EventInputError as exc:  # name the photo, not the event's location
        raise EventInputError(f"第 {i} 张照片的位置无效:{exc.message_zh}", f"Photo {i} has a bad position: "
                              f"{exc.message_en}", "photos") from None
    return CheckedPhoto(ctype, data, digest, stamp.step, lon, lat, accuracy)


def _check_accuracy(value, name: str = "accuracy_m") -> float | None:
    """A position accuracy radius in metres (0–100 km), or None."""
    if value is None:
        return None
    try:
        metres = float(value)
    except (TypeError, ValueError):
        metres = float("nan")
    if isinstance(value, bool) or not math.isfinite(metres) or not 0 <= metres <= MAX_ACCURACY_M:
        raise EventInputError("定位精度无效(0–100000 米)。", "Position accuracy must be 0–100000 m.", name)
    return metres


def _check_position_source(value) -> str | None:
    if value is None:
        return None
    if value not in POSITION_SOURCES:
        raise EventInputError(f"定位来源无效:{value}", f"Unknown position source: {value}", "position_source")
    return value


def _check_client_key(client_key) -> str | None:
    if client_key is not None and (not isinstance(client_key, str) or not 1 <= len(client_key) <= 200):
        raise EventInputError("请求标识无效(1–200 字符)。", "client_key must be 1–200 characters.", "client_key")
    return client_key


def _check_coordinates(lon, lat) -> tuple[float, float]:
    try:
        lon_f, lat_f = float(lon), float(lat)
    except (TypeError, ValueError):
        raise EventInputError("坐标不是数字。", "Coordinates are not numbers.", "location") from None
    if not (math.isfinite(lon_f) and math.isfinite(lat_f)):
        raise EventInputError("坐标无效(NaN 或无穷大)。", "Coordinates are not finite (NaN or infinity).", "location")
    if not (-180 <= lon_f <= 180 and -90 <= lat_f <= 90):
        raise EventInputError("坐标超出经纬度范围。", "Coordinates are out of the lon/lat range.", "location")
    return lon_f, lat_f


def _check_text(value, name: str, zh: str, *, required: bool, limit: int) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise EventInputError(f"请填写{zh}。", f"The {name} is required.", name)
        return None
    if not isinstance(value, str):
        raise EventInputError(f"{zh}必须是文字。", f"The {name} must be text.", name)
    value = value.strip()
    if len(value) > limit:
        raise EventInputError(f"{zh}过长(最多 {limit} 字)。", f"The {name} is too long (max {limit}).", name)
    if "\x00" in value:
        raise EventInputError(f"{zh}含有非法字符。", f"The {name} contains invalid characters.", name)
    return value


def _aware(value, name: str) -> datetime:
    """A timezone-aware datetime from a datetime/date/ISO string (naive → the display zone, China time)."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise EventInputError(f"时间格式无效:{value}", f"Invalid date/time: {value}", name) from None
    elif isinstance(value, date) and not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day, 23, 59, 59)
    if not isinstance(value, datetime):
        raise EventInputError("请提供时间。", "A date/time is required.", name)
    return as_local(value)


def _jsonable(value):
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def _scope(session: Session):
    return session.info.get("scope")
