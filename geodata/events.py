"""The event service: report, route, move through the loop, watch deadlines, measure.

Public entry points validate their input and delegate to private helpers; they
run inside the caller's session and transaction and never commit, so a callback
or HTTP handler decides where the transaction ends (and a failure writes
nothing). Access is enforced by row-level security (the session's scope); the
role checks here give a clear message before PostgreSQL would refuse.

* :func:`create_event` — validate, route by location inside PostGIS
  (``dvmap_route_event``: containing current grid → worker, village, town;
  department from ``event_routing``; outside every grid → village or county
  queue; boundary guard), idempotent on ``client_key``.
* :func:`transition` — the only writer of ``event.state``: optimistic lock on
  ``version``, :mod:`geodata.workflow` rules, one history row per change.
* :func:`check_overdue` — marks overdue events and escalates (督办).
* :func:`indicators` — 结案率, 按期结案率, 返工率, average handling time, open-overdue.

Errors are typed and bilingual (``.message_zh`` / ``.message_en``).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import secrets
import uuid
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any, Iterable, Mapping, Sequence

from sqlalchemy import text
from sqlalchemy.orm import Session

from geodata.i18n import BilingualError
from geodata.workflow import (
    CLOSED,
    INITIAL,
    MAX_ESCALATION,
    NOTE_REQUIRED,
    REPORT,
    TRANSITIONS,
    Action,
    InvalidTransition,
    PermissionDenied,
    State,
    check_may_report,
    check_permission,
    next_state,
)

__all__ = [
    "Actor", "EventRef", "TransitionResult", "Indicators", "ApiClient",
    "EventError", "EventInputError", "EventNotFound", "StaleVersion", "InvalidTransition", "PermissionDenied",
    "create_event", "transition", "add_note", "record_history", "check_overdue", "indicators", "indicators_by_village", "indicators_grouped",
    "get_event", "event_history", "event_photos", "photo_bytes", "categories", "reference_lists",
    "public_requests", "sniff_image", "boundary_metres",
    "create_api_client", "find_api_client", "deactivate_api_client",
]

#: Largest photo accepted (bytes).
MAX_PHOTO_BYTES = 5 * 1024 * 1024
#: Most photos in one submission or transition.
MAX_PHOTOS = 9
MAX_DESCRIPTION = 2000
MAX_NOTE = 2000
#: China Standard Time, used for naive datetimes coming from forms.
CST = timezone(timedelta(hours=8))
DEFAULT_BOUNDARY_M = 30.0


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


# -- errors ---------------------------------------------------------------------

class EventError(BilingualError):
    """Base of the event service's errors (besides the workflow's own)."""

    code = "event_error"


class EventInputError(EventError):
    """Input that cannot become (or change) an event; ``field`` names the culprit."""

    code = "invalid_input"

    def __init__(self, message_zh: str, message_en: str, field: str | None = None):
        super().__init__(message_zh, message_en)
        self.field = field


class EventNotFound(EventError):
    """No such event, or not visible in the caller's scope (the two look alike on purpose)."""

    code, http_status = "not_found", 404

    def __init__(self, event_id):
        super().__init__(
            f"未找到事件(编号 {event_id}),可能不存在或不在您的权限范围内。",
            f"Event {event_id} not found; it may not exist or is outside your scope.",
        )
        self.event_id = event_id


class StaleVersion(EventError):
    """The event changed since the caller read it (optimistic lock)."""

    code, http_status = "stale", 409

    def __init__(self, event_id, expected: int, current: int | None = None):
        super().__init__(
            f"事件 {event_id} 已被他人更新(您看到的是第 {expected} 版),请刷新后重试。",
            f"Event {event_id} was changed by someone else (you saw version {expected}); "
            "reload and try again.",
        )
        self.event_id = event_id
        self.expected = expected
        self.current = current


# -- value types ---------------------------------------------------------------

@dataclass(frozen=True)
class Actor:
    """Who acts: a user, a system job or an API client.

    Parameters
    ----------
    name : str
        Shown in the timeline (user name, ``system``, client name).
    role : str
        One of :data:`geodata.workflow.ROLES`.
    user_id : int, optional
        The user's id (``person``/user table), kept in history.
    """

    name: str
    role: str
    user_id: int | None = None

    @classmethod
    def system(cls, name: str = "system") -> "Actor":
        return cls(name, "system")


@dataclass(frozen=True)
class EventRef:
    """What :func:`create_event` returns: the event's identity and route."""

    id: int
    reported_at: datetime
    state: str
    version: int
    created: bool
    village_id: int | None = None
    town_id: int | None = None
    grid_uid: str | None = None
    grid_id: int | None = None
    worker_id: int | None = None
    department: str | None = None
    queue: str | None = None
    outside_grid: bool = False
    boundary_pending: bool = False
    candidate_grid_uids: tuple[str, ...] = ()
    history_id: int | None = None


@dataclass(frozen=True)
class TransitionResult:
    """What :func:`transition` returns."""

    event_id: int
    action: str
    from_state: str
    to_state: str
    version: int
    history_id: int
    changes: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Indicators:
    """GB-style performance indicators for one period (see :func:`indicators`)."""

    start: datetime
    end: datetime
    as_of: datetime
    reported: int
    should_close: int       # 应结案数
    closed: int             # 结案数
    closed_on_time: int     # 按期结案数
    postponed: int          # 缓办数
    reworked: int           # 返工数
    closure_rate: float | None        # 结案率
    on_time_rate: float | None        # 按期结案率
    rework_rate: float | None         # 返工率
    avg_handling_hours: float | None  # 平均处置时长
    open_overdue: int                 # 超期未结 (as of ``as_of``, any period)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ApiClient:
    """An external system allowed to report through Open311."""

    id: int
    name: str
    village_ids: frozenset[int] | None
    source: str
    active: bool


# -- input checks (pure) --------------------------------------------------------

_PHONE = re.compile(r"^[0-9+\-() ]{3,20}$")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,190}$")


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


def _check_photos(photos) -> list[tuple[str, bytes, str]]:
    """Return ``[(content_type, bytes, sha256)]`` or raise EventInputError."""
    photos = list(photos or ())
    if len(photos) > MAX_PHOTOS:
        raise EventInputError(
            f"照片最多 {MAX_PHOTOS} 张。", f"At most {MAX_PHOTOS} photos.", "photos"
        )
    out = []
    for i, photo in enumerate(photos, 1):
        if not isinstance(photo, (bytes, bytearray, memoryview)):
            raise EventInputError(f"第 {i} 张照片不是文件内容。", f"Photo {i} is not file content.", "photos")
        data = bytes(photo)
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
        out.append((ctype, data, hashlib.sha256(data).hexdigest()))
    return out


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
    """A timezone-aware datetime from a datetime/date/ISO string (naive → China time)."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise EventInputError(f"时间格式无效:{value}", f"Invalid date/time: {value}", name) from None
    elif isinstance(value, date) and not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day, 23, 59, 59)
    if not isinstance(value, datetime):
        raise EventInputError("请提供时间。", "A date/time is required.", name)
    return value if value.tzinfo else value.replace(tzinfo=CST)


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


# -- creating an event -----------------------------------------------------------

def create_event(
    session: Session,
    *,
    lon: float,
    lat: float,
    subclass: str,
    description: str,
    urgency: str = "normal",
    source: str,
    actor: Actor,
    reporter_name: str | None = None,
    reporter_phone: str | None = None,
    reporter_email: str | None = None,
    photos: Iterable[bytes] = (),
    client_key: str | None = None,
    address: str | None = None,
    media_url: str | None = None,
    sensor_id: int | None = None,
    api_client_id: int | None = None,
    reported_at: datetime | None = None,
    boundary_m: float | None = None,
) -> EventRef:
    """Report an event at a point and route it, in the caller's transaction.

    Parameters
    ----------
    session : Session
        A scoped session (its ``info['scope']`` decides which villages the
        reporter may report into).
    lon, lat : float
        Location in CGCS2000 (EPSG:4490) degrees; must lie inside the county.
    subclass : str
        Event subclass code (``event_subclass.code``; the Open311 service_code).
    description : str
        What was seen (1–2000 characters).
    urgency : str
        ``event_urgency.code``: ``normal``, ``urgent`` or ``emergency``.
    source : str
        ``event_source.code``: ``patrol``, ``hotline``, ``citizen``, ``video_ai``,
        ``sensor`` or ``superior``.
    actor : Actor
        Who reports; the role must be allowed to report.
    reporter_name, reporter_phone, reporter_email : str, optional
        Personal data of the reporter (never published).
    photos : iterable of bytes
        JPEG, PNG or WebP files, each at most 5 MB, at most 9.
    client_key : str, optional
        Idempotency key: a repeated submission with the same key returns the
        first event (``created=False``) and writes nothing.
    address, media_url : str, optional
        Free-text address and an external photo link (Open311).
    sensor_id, api_client_id : int, optional
        Origin of machine-reported events.
    reported_at : datetime, optional
        Report time (default: the transaction's ``now()``); for imports and tests.
    boundary_m : float, optional
        Boundary-guard distance in metres (default :func:`boundary_metres`).

    Returns
    -------
    EventRef

    Raises
    ------
    EventInputError
        Unknown subclass/urgency/source, bad coordinates or outside the county,
        bad text, bad photos, a ``client_key`` used for an event you cannot see.
    PermissionDenied
        The role may not report, or the point lies outside the caller's villages.
    """
    check_may_report(actor.role)
    lon_f, lat_f = _check_coordinates(lon, lat)
    description = _check_text(description, "description", "事件描述", required=True, limit=MAX_DESCRIPTION)
    reporter_name = _check_text(reporter_name, "reporter_name", "上报人姓名", required=False, limit=50)
    reporter_phone = _check_text(reporter_phone, "reporter_phone", "联系电话", required=False, limit=20)
    if reporter_phone and not _PHONE.match(reporter_phone):
        raise EventInputError("联系电话格式无效。", "The phone number is not valid.", "reporter_phone")
    reporter_email = _check_text(reporter_email, "reporter_email", "电子邮箱", required=False, limit=254)
    if reporter_email and not _EMAIL.match(reporter_email):
        raise EventInputError("电子邮箱格式无效。", "The e-mail address is not valid.", "reporter_email")
    address = _check_text(address, "address", "地址", required=False, limit=300)
    media_url = _check_text(media_url, "media_url", "图片链接", required=False, limit=1000)
    if media_url and not re.match(r"^https?://", media_url, re.I):
        raise EventInputError("图片链接必须以 http(s):// 开头。", "media_url must be an http(s) URL.", "media_url")
    if client_key is not None:
        if not isinstance(client_key, str) or not 1 <= len(client_key) <= 200:
            raise EventInputError("请求标识无效(1–200 字符)。", "client_key must be 1–200 characters.", "client_key")
    checked_photos = _check_photos(photos)
    if reported_at is not None:
        reported_at = _aware(reported_at, "reported_at")
    metres = boundary_metres() if boundary_m is None else float(boundary_m)
    if not math.isfinite(metres) or metres < 0:
        raise EventInputError("边界距离无效。", "Invalid boundary distance.", "boundary_m")

    ref = _reference_row(session, subclass, urgency, source)
    route = _route(session, lon_f, lat_f, subclass, metres)
    if not route["inside_county"]:
        raise EventInputError(
            "该位置不在本县范围内。", "This location is outside the county.", "location"
        )
    scope = _scope(session)
    if scope is not None and not scope.allows_village(route["village_id"]):
        raise PermissionDenied(
            "该位置不在您可以上报的村范围内。", "This location is outside the villages you may report into."
        )
    at = reported_at or ref["now"]
    event_id, history_id = ref["event_id"], ref["history_id"]

    if client_key is not None:
        claimed = session.execute(
            text(
                "INSERT INTO event_request (client_key, event_id, reported_at, village_id)"
                " VALUES (:k, :id, :at, :v) ON CONFLICT (client_key) DO NOTHING RETURNING event_id"
            ),
            {"k": client_key, "id": event_id, "at": at, "v": route["village_id"]},
        ).first()
        if claimed is None:
            return _replayed(session, client_key)

    candidates = [str(u) for u in (route["candidate_grid_uids"] or [])]
    params = {
        "id": event_id, "at": at, "village_id": route["village_id"], "town_id": route["town_id"],
        "grid_uid": route["grid_uid"], "grid_id": route["grid_id"], "worker_id": route["worker_id"],
        "department": route["department"], "queue": route["queue"], "outside_grid": route["outside_grid"],
        "boundary_pending": route["boundary_pending"], "candidates": candidates,
        "class_code": ref["class_code"], "subclass": subclass, "description": description, "urgency": urgency,
        "source": source, "address": address, "media_url": media_url, "lon": lon_f, "lat": lat_f,
        "reporter_name": reporter_name, "reporter_phone": reporter_phone, "reporter_email": reporter_email,
        "reported_by": actor.name, "api_client_id": api_client_id, "sensor_id": sensor_id,
        "state": INITIAL.value,
    }
    # No RETURNING: a grid worker may report into a neighbour's grid, which RLS
    # then hides from them; ids come from the sequences instead.
    session.execute(
        text(
            """
            INSERT INTO event (id, reported_at, village_id, town_id, grid_uid, grid_id, worker_id, department,
                               queue, outside_grid, boundary_pending, candidate_grid_uids, class_code,
                               subclass_code, description, urgency, source, address, media_url, geom,
                               reporter_name, reporter_phone, reporter_email, reported_by, api_client_id,
                               sensor_id, state, version, updated_at)
            VALUES (:id, :at, :village_id, :town_id, :grid_uid, :grid_id, :worker_id, :department,
                    :queue, :outside_grid, :boundary_pending, CAST(:candidates AS uuid[]), :class_code,
                    :subclass, :description, :urgency, :source, :address, :media_url,
                    ST_SetSRID(ST_MakePoint(:lon, :lat), 4490),
                    :reporter_name, :reporter_phone, :reporter_email, :reported_by, :api_client_id,
                    :sensor_id, :state, 1, :at)
            """
        ),
        params,
    )
    route_data = {
        "queue": route["queue"], "grid_uid": route["grid_uid"], "worker_id": route["worker_id"],
        "department": route["department"], "village_id": route["village_id"], "town_id": route["town_id"],
        "outside_grid": route["outside_grid"], "boundary_pending": route["boundary_pending"],
        "candidate_grid_uids": candidates, "source": source, "subclass": subclass, "urgency": urgency,
    }
    if checked_photos:
        route_data["photos"] = len(checked_photos)
    _insert_history(
        session, history_id=history_id, event_id=event_id, reported_at=at, village_id=route["village_id"],
        at=at, actor=actor, action=REPORT, from_state=None, to_state=INITIAL.value, version=1,
        note=None, data=route_data,
    )
    _insert_photos(session, event_id, at, route["village_id"], history_id, checked_photos)
    return EventRef(
        id=event_id, reported_at=at, state=INITIAL.value, version=1, created=True,
        village_id=route["village_id"], town_id=route["town_id"],
        grid_uid=str(route["grid_uid"]) if route["grid_uid"] else None, grid_id=route["grid_id"],
        worker_id=route["worker_id"], department=route["department"], queue=route["queue"],
        outside_grid=route["outside_grid"], boundary_pending=route["boundary_pending"],
        candidate_grid_uids=tuple(candidates), history_id=history_id,
    )


def _reference_row(session: Session, subclass, urgency, source) -> Mapping:
    if not isinstance(subclass, str) or not subclass:
        raise EventInputError("请选择事件类别。", "Choose an event category.", "subclass")
    row = session.execute(
        text(
            """
            SELECT (SELECT s.class_code FROM event_subclass s WHERE s.code = :sc AND s.active) AS class_code,
                   EXISTS (SELECT 1 FROM event_urgency u WHERE u.code = :u) AS urgency_ok,
                   EXISTS (SELECT 1 FROM event_source o WHERE o.code = :src) AS source_ok,
                   now() AS now, nextval('event_id_seq') AS event_id,
                   nextval('event_history_id_seq') AS history_id
            """
        ),
        {"sc": subclass, "u": str(urgency), "src": str(source)},
    ).mappings().one()
    if row["class_code"] is None:
        raise EventInputError(f"事件类别不存在:{subclass}", f"Unknown event category: {subclass}", "subclass")
    if not row["urgency_ok"]:
        raise EventInputError(f"紧急程度无效:{urgency}", f"Unknown urgency: {urgency}", "urgency")
    if not row["source_ok"]:
        raise EventInputError(f"事件来源无效:{source}", f"Unknown event source: {source}", "source")
    return row


def _route(session: Session, lon: float, lat: float, subclass: str, metres: float) -> Mapping:
    return session.execute(
        text("SELECT * FROM dvmap_route_event(:lon, :lat, :sc, :m)"),
        {"lon": lon, "lat": lat, "sc": subclass, "m": metres},
    ).mappings().one()


def _replayed(session: Session, client_key: str) -> EventRef:
    row = session.execute(
        text("SELECT event_id, reported_at FROM event_request WHERE client_key = :k"), {"k": client_key}
    ).first()
    if row is None:
        raise EventInputError(
            "该请求标识已被使用。", "This client_key has already been used.", "client_key"
        )
    ev = session.execute(
        text(
            """
            SELECT id, reported_at, state, version, village_id, town_id, grid_uid::text AS grid_uid, grid_id,
                   worker_id, department, queue, outside_grid, boundary_pending,
                   candidate_grid_uids::text[] AS candidates
              FROM event WHERE id = :id AND reported_at = :at
            """
        ),
        {"id": row.event_id, "at": row.reported_at},
    ).mappings().first()
    if ev is None:  # visible key, hidden event (a grid worker's report routed elsewhere)
        return EventRef(id=row.event_id, reported_at=row.reported_at, state=INITIAL.value, version=1, created=False)
    return EventRef(
        id=ev["id"], reported_at=ev["reported_at"], state=ev["state"], version=ev["version"], created=False,
        village_id=ev["village_id"], town_id=ev["town_id"], grid_uid=ev["grid_uid"], grid_id=ev["grid_id"],
        worker_id=ev["worker_id"], department=ev["department"], queue=ev["queue"],
        outside_grid=ev["outside_grid"], boundary_pending=ev["boundary_pending"],
        candidate_grid_uids=tuple(ev["candidates"] or ()),
    )


def _insert_history(session: Session, *, history_id, event_id, reported_at, village_id, at, actor: Actor,
                    action: str, from_state, to_state, version: int, note, data: dict) -> None:
    # village_id is not sent: dvmap_record_history takes it from the event row itself.
    record_history(session, [{
        "id": history_id, "event_id": event_id, "event_reported_at": reported_at, "at": at,
        "actor": actor.name, "actor_role": actor.role, "actor_user_id": actor.user_id, "action": action,
        "from_state": from_state, "to_state": to_state, "version": version, "note": note,
        "data": _jsonable(data),
    }])


def record_history(session: Session, rows: list[dict]) -> int:
    """Append ``event_history`` rows through ``dvmap_record_history`` (migration 0014).

    The app role may not insert history rows itself: the function checks each row
    against the event's current state and version and its last history row, so it
    must run after the event's own ``UPDATE``/``INSERT``, in the same transaction.

    Parameters
    ----------
    session : Session
    rows : list of dict
        Keys: ``event_id``, ``event_reported_at``, ``action``, ``from_state``,
        ``to_state``, ``version``, ``actor``, ``actor_role``, and optionally ``id``,
        ``at`` (default now), ``actor_user_id``, ``note``, ``data``.

    Returns
    -------
    int
        The number of rows written.
    """
    if not rows:
        return 0
    payload = json.dumps(rows, ensure_ascii=False, default=lambda v: v.isoformat() if hasattr(v, "isoformat")
                         else str(v))
    return session.execute(text("SELECT count(*) FROM dvmap_record_history(CAST(:rows AS jsonb))"),
                           {"rows": payload}).scalar_one()


def _insert_photos(session: Session, event_id, reported_at, village_id, history_id, photos) -> None:
    for ctype, data, digest in photos:
        session.execute(
            text(
                """
                INSERT INTO event_photo (event_id, event_reported_at, village_id, history_id, content_type,
                                         size, sha256, data)
                VALUES (:eid, :rat, :vid, :hid, :ct, :size, :sha, :data)
                ON CONFLICT (event_id, sha256) DO NOTHING
                """
            ),
            {"eid": event_id, "rat": reported_at, "vid": village_id, "hid": history_id, "ct": ctype,
             "size": len(data), "sha": digest, "data": data},
        )


# -- the loop ----------------------------------------------------------------------

_DATA_KEYS: dict[Action, frozenset[str]] = {
    Action.ACCEPT: frozenset({"grid_uid"}),
    Action.DISPATCH: frozenset({"grid_uid", "worker_id", "department"}),
    Action.REASSIGN: frozenset({"grid_uid", "worker_id", "department"}),
    Action.POSTPONE: frozenset({"until"}),
    Action.RATE: frozenset({"rating"}),
    Action.ESCALATE: frozenset({"level"}),
}

_EVENT_ROW = """
    SELECT id, reported_at, state, version, village_id, town_id, grid_uid::text AS grid_uid, grid_id,
           worker_id, department, subclass_code, urgency, dispatched_at, sla_due_at, due_at,
           escalation_level, boundary_pending, candidate_grid_uids::text[] AS candidates,
           now() AS db_now, nextval('event_history_id_seq') AS history_id
      FROM event WHERE id = :id
"""


def transition(
    session: Session,
    event_id: int,
    action: Action | str,
    actor: Actor,
    expected_version: int,
    note: str | None = None,
    *,
    at: datetime | None = None,
    photos: Iterable[bytes] = (),
    **data: Any,
) -> TransitionResult:
    """Apply one workflow action to one event: the only writer of ``event.state``.

    The change is an ``UPDATE … WHERE id = :id AND version = :expected`` that
    bumps the version, plus exactly one ``event_history`` row (and any photos),
    all in the caller's transaction. Of concurrent attempts based on the same
    version exactly one succeeds; the others get :class:`StaleVersion`.

    Parameters
    ----------
    session : Session
        A scoped session; RLS decides which events the actor can see.
    event_id : int
    action : Action or str
        See :data:`geodata.workflow.TRANSITIONS`.
    actor : Actor
        Who acts; ``actor.role`` must be allowed the action.
    expected_version : int
        The version the actor's decision was based on.
    note : str, optional
        Reason or result; required for reject, send_back, reassign, postpone,
        handle (the result text) and verify_fail.
    at : datetime, optional
        Time of the action (default: the transaction's ``now()``); for imports and tests.
    photos : iterable of bytes
        Photos attached to this step (e.g. the result of handling).
    **data
        Per action: ``accept``/``dispatch``/``reassign`` take ``grid_uid`` (confirms or
        changes the route; required to dispatch an event flagged 边界待确认),
        ``worker_id`` and ``department``; ``postpone`` takes ``until`` (the new due
        date); ``rate`` takes ``rating`` (1–5); ``escalate`` takes an optional ``level``.

    Returns
    -------
    TransitionResult

    Raises
    ------
    EventNotFound, StaleVersion, InvalidTransition, PermissionDenied, EventInputError
    """
    try:
        act = Action(action)
    except ValueError:
        raise InvalidTransition("?", action) from None
    check_permission(actor.role, act)
    unknown = set(data) - _DATA_KEYS.get(act, frozenset())
    if unknown:
        raise EventInputError(
            f"此操作不接受参数:{', '.join(sorted(unknown))}",
            f"Unexpected parameters for '{act.value}': {', '.join(sorted(unknown))}",
            sorted(unknown)[0],
        )
    note = _check_text(note, "note", "说明", required=act in NOTE_REQUIRED, limit=MAX_NOTE)
    checked_photos = _check_photos(photos)
    try:
        expected = int(expected_version)
    except (TypeError, ValueError):
        raise EventInputError("版本号无效。", "Invalid version.", "version") from None
    try:
        eid = int(event_id)
    except (TypeError, ValueError):
        raise EventNotFound(event_id) from None

    ev = session.execute(text(_EVENT_ROW), {"id": eid}).mappings().first()
    if ev is None:
        raise EventNotFound(eid)
    if ev["version"] != expected:
        raise StaleVersion(eid, expected, ev["version"])
    new = next_state(ev["state"], act)
    when = _aware(at, "at") if at is not None else ev["db_now"]
    if when < ev["reported_at"]:
        raise EventInputError("操作时间早于上报时间。", "The action time is before the report time.", "at")

    changes = _changes_for(session, act, ev, when, note, data)
    return _apply(session, ev, act, new, actor, expected, when, note, changes, checked_photos)


def _changes_for(session: Session, act: Action, ev: Mapping, when: datetime, note, data: dict) -> dict:
    """Columns to set besides state/version, validated per action."""
    ch: dict[str, Any] = {}
    if act in (Action.ACCEPT, Action.DISPATCH, Action.REASSIGN):
        if data.get("grid_uid") is not None:
            ch.update(_reroute(session, ev, data["grid_uid"]))
        if data.get("worker_id") is not None:
            ch["worker_id"] = _check_worker(session, data["worker_id"])
        if data.get("department") is not None:
            ch["department"] = _check_department(session, data["department"])
    if act == Action.DISPATCH:
        if ev["boundary_pending"] and "grid_uid" not in ch:
            raise EventInputError(
                "事件位于网格边界(边界待确认),请先确认责任网格再派遣。",
                "The event lies on a grid boundary (route to be confirmed): choose the grid before dispatching.",
                "grid_uid",
            )
        if not (ch.get("worker_id", ev["worker_id"]) or ch.get("department", ev["department"])):
            raise EventInputError(
                "没有可派遣的网格员或部门。", "There is no grid worker or department to dispatch to.", "worker_id"
            )
        if ev["dispatched_at"] is None:  # the SLA clock starts at the first dispatch
            hours = session.execute(
                text("SELECT hours FROM event_sla WHERE subclass_code = :s AND urgency = :u"),
                {"s": ev["subclass_code"], "u": ev["urgency"]},
            ).scalar()
            if hours is None:
                raise EventInputError(
                    "该类别缺少处置时限配置。", "No time limit is configured for this category.", "subclass"
                )
            ch["dispatched_at"] = when
            ch["sla_due_at"] = ch["due_at"] = when + timedelta(hours=float(hours))
    elif act == Action.REASSIGN:
        if not ch:
            raise EventInputError(
                "改派需要指定新的网格、网格员或部门。", "Reassigning needs a new grid, worker or department.",
                "worker_id",
            )
    elif act == Action.POSTPONE:
        if data.get("until") is None:
            raise EventInputError("缓办需要新的办结期限。", "Postponing needs a new due date.", "until")
        until = _aware(data["until"], "until")
        floor = max(when, ev["due_at"]) if ev["due_at"] else when
        if until <= floor:
            raise EventInputError(
                "新的办结期限必须晚于当前期限和当前时间。",
                "The new due date must be later than the current due date and now.", "until",
            )
        ch.update(postponed_until=until, due_at=until, overdue_at=None, postpone_count=_Expr("postpone_count + 1"))
    elif act == Action.HANDLE:
        ch.update(result=note, handled_at=when)
    elif act == Action.VERIFY_PASS:
        ch["verified_at"] = when
    elif act == Action.VERIFY_FAIL:
        ch["rework_count"] = _Expr("rework_count + 1")
    elif act == Action.CLOSE:
        ch["closed_at"] = when
    elif act == Action.RATE:
        rating = data.get("rating")
        if isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5:
            raise EventInputError("评价须为 1–5 分。", "The rating must be 1 to 5.", "rating")
        ch.update(rating=rating, evaluated_at=when)
    elif act == Action.ESCALATE:
        level = data.get("level", ev["escalation_level"] + 1)
        if isinstance(level, bool) or not isinstance(level, int) or not ev["escalation_level"] < level <= MAX_ESCALATION:
            raise EventInputError(
                "督办级别无效或已是最高级别。", "Invalid escalation level, or already at the highest level.", "level"
            )
        ch["escalation_level"] = level
    elif act == Action.MARK_OVERDUE:
        if ev["due_at"] is None or ev["due_at"] >= when:
            raise EventInputError("事件尚未超期。", "The event is not overdue.", "due_at")
        ch["overdue_at"] = when
    return ch


class _Expr(str):
    """A SQL expression (not a value) in a change set."""


def _reroute(session: Session, ev: Mapping, grid_uid) -> dict:
    try:
        uid = str(uuid.UUID(str(grid_uid)))
    except ValueError:
        raise EventInputError(f"网格编号无效:{grid_uid}", f"Invalid grid id: {grid_uid}", "grid_uid") from None
    row = session.execute(
        text(
            """
            SELECT g.id, g.uid::text AS uid, g.village_id, v.town_id,
                   (SELECT p.id FROM person p WHERE p.id = g.worker_id AND p.active) AS worker_id
              FROM grid g JOIN village v ON v.id = g.village_id
             WHERE g.uid = CAST(:uid AS uuid) AND g.valid_to IS NULL
            """
        ),
        {"uid": uid},
    ).mappings().first()
    if row is None:
        raise EventInputError(
            "该网格不存在或不在您的权限范围内。", "That grid does not exist or is outside your scope.", "grid_uid"
        )
    return {
        "grid_id": row["id"], "grid_uid": row["uid"], "village_id": row["village_id"], "town_id": row["town_id"],
        "worker_id": row["worker_id"], "queue": "grid", "boundary_pending": False,
    }


def _check_worker(session: Session, worker_id) -> int:
    try:
        wid = int(worker_id)
    except (TypeError, ValueError):
        wid = None
    ok = wid is not None and session.execute(
        text("SELECT EXISTS (SELECT 1 FROM person WHERE id = :id AND active)"), {"id": wid}
    ).scalar()
    if not ok:
        raise EventInputError(
            f"网格员不存在或已停用:{worker_id}", f"Unknown or inactive worker: {worker_id}", "worker_id"
        )
    return wid


def _check_department(session: Session, code) -> str:
    ok = isinstance(code, str) and session.execute(
        text("SELECT EXISTS (SELECT 1 FROM department WHERE code = :c)"), {"c": code}
    ).scalar()
    if not ok:
        raise EventInputError(f"部门不存在:{code}", f"Unknown department: {code}", "department")
    return code


def _apply(session: Session, ev: Mapping, act: Action, new: State, actor: Actor, expected: int,
           when: datetime, note, changes: dict, photos) -> TransitionResult:
    sets = ["state = :new_state", "version = version + 1", "updated_at = :when"]
    params: dict[str, Any] = {"new_state": new.value, "when": when, "id": ev["id"],
                              "rat": ev["reported_at"], "expected": expected, "old_state": ev["state"]}
    for i, (col, value) in enumerate(changes.items()):
        if isinstance(value, _Expr):
            sets.append(f"{col} = {value}")
        elif col == "grid_uid":
            sets.append(f"{col} = CAST(:c{i} AS uuid)")
            params[f"c{i}"] = value
        else:
            sets.append(f"{col} = :c{i}")
            params[f"c{i}"] = value
    row = session.execute(
        text(
            f"UPDATE event SET {', '.join(sets)}"
            " WHERE id = :id AND reported_at = :rat AND version = :expected AND state = :old_state"
            " RETURNING version, village_id, rework_count, escalation_level, due_at"
        ),
        params,
    ).mappings().first()
    if row is None:
        current = session.execute(
            text("SELECT version FROM event WHERE id = :id"), {"id": ev["id"]}
        ).scalar()
        if current is None:
            raise EventNotFound(ev["id"])
        raise StaleVersion(ev["id"], expected, current)
    recorded = {k: v for k, v in changes.items() if not isinstance(v, _Expr)}
    if act == Action.VERIFY_FAIL:
        recorded["rework_count"] = row["rework_count"]
    if act == Action.POSTPONE:
        recorded["previous_due_at"] = ev["due_at"]
    if act == Action.ESCALATE:
        recorded["from_level"] = ev["escalation_level"]
    if photos:
        recorded["photos"] = len(photos)
    _insert_history(
        session, history_id=ev["history_id"], event_id=ev["id"], reported_at=ev["reported_at"],
        village_id=row["village_id"], at=when, actor=actor, action=act.value, from_state=ev["state"],
        to_state=new.value, version=row["version"], note=note, data=recorded,
    )
    _insert_photos(session, ev["id"], ev["reported_at"], row["village_id"], ev["history_id"], photos)
    return TransitionResult(
        event_id=ev["id"], action=act.value, from_state=ev["state"], to_state=new.value,
        version=row["version"], history_id=ev["history_id"], changes=_jsonable(recorded),
    )


#: Action name of history rows written by :func:`add_note` (not a workflow action).
NOTE = "note"


def add_note(session: Session, event_id: int, actor: Actor, note: str, *, data: Mapping | None = None) -> int:
    """Append a remark to an event's history without changing its state (e.g. a sensor alarm cleared).

    Bumps the event's version (history rows are unique per version) and writes
    one ``event_history`` row with action :data:`NOTE`, in the caller's transaction.

    Parameters
    ----------
    session : Session
    event_id : int
    actor : Actor
        Who remarks; the role must be allowed to report.
    note : str
        The remark (1–2000 characters).
    data : mapping, optional
        Facts kept with the row (JSON).

    Returns
    -------
    int
        The id of the history row.

    Raises
    ------
    EventNotFound, PermissionDenied, EventInputError
    """
    check_may_report(actor.role)
    note = _check_text(note, "note", "说明", required=True, limit=MAX_NOTE)
    row = session.execute(
        text(
            "UPDATE event SET version = version + 1, updated_at = now() WHERE id = :id"
            " RETURNING reported_at, village_id, state, version, now() AS at,"
            " nextval('event_history_id_seq') AS history_id"
        ),
        {"id": int(event_id)},
    ).mappings().first()
    if row is None:
        raise EventNotFound(event_id)
    _insert_history(
        session, history_id=row["history_id"], event_id=int(event_id), reported_at=row["reported_at"],
        village_id=row["village_id"], at=row["at"], actor=actor, action=NOTE, from_state=row["state"],
        to_state=row["state"], version=row["version"], note=note, data=dict(data or {}),
    )
    return row["history_id"]


# -- deadlines -------------------------------------------------------------------

def check_overdue(
    session: Session,
    now: datetime | None = None,
    *,
    village_after: timedelta = timedelta(hours=24),
    county_after: timedelta = timedelta(hours=72),
) -> dict[str, int]:
    """Mark overdue events and escalate (督办) the long-overdue ones, set-based.

    An open event whose effective deadline (``due_at``) has passed is marked
    (``overdue_at``); overdue by more than ``village_after`` it is escalated to
    level 1 (村级督办), by more than ``county_after`` to level 2 (县级督办). Every
    change bumps the event's version and writes one history row (actor
    ``system``), in the caller's transaction. Run it with a county-scope session.

    Parameters
    ----------
    session : Session
    now : datetime, optional
        Reference time (default: the transaction's ``now()``).
    village_after, county_after : timedelta
        Margins after the deadline for the two escalation levels.

    Returns
    -------
    dict
        ``{"marked": n, "escalated_village": n, "escalated_county": n}``.
    """
    if county_after < village_after:
        raise EventInputError("县级督办时限不能早于村级。", "county_after must not be shorter than village_after.")
    now = _aware(now, "now") if now is not None else session.execute(text("SELECT now()")).scalar()
    mark_states = [s.value for (s, a) in TRANSITIONS if a == Action.MARK_OVERDUE]
    escalate_states = [s.value for (s, a) in TRANSITIONS if a == Action.ESCALATE]
    # The rows changed, as history rows for dvmap_record_history (a second statement: it
    # checks them against the events, which a statement's own CTEs cannot see changed).
    history = """
        SELECT coalesce(jsonb_agg(jsonb_build_object(
                   'event_id', id, 'event_reported_at', reported_at, 'at', CAST(:now AS timestamptz),
                   'actor', 'system', 'actor_role', 'system', 'action', CAST(:action AS text),
                   'from_state', state, 'to_state', state, 'version', version, 'note', CAST(:note AS text),
                   'data', data)), '[]'::jsonb)
          FROM u
    """
    marked = session.execute(
        text(
            f"""
            WITH c AS (
                SELECT id, reported_at FROM event
                 WHERE state = ANY(:states) AND due_at < :now AND overdue_at IS NULL
                 FOR UPDATE
            ), u AS (
                UPDATE event e SET overdue_at = :now, version = e.version + 1, updated_at = :now
                  FROM c WHERE e.id = c.id AND e.reported_at = c.reported_at
                RETURNING e.id, e.reported_at, e.village_id, e.state, e.version,
                          jsonb_build_object('due_at', e.due_at) AS data
            ) {history}
            """
        ),
        {"states": mark_states, "now": now, "action": Action.MARK_OVERDUE.value,
         "note": "超期未办结 / overdue"},
    ).scalar_one()
    marked = record_history(session, marked)
    counts = {"marked": marked}
    for level, margin, key, note in (
        (1, village_after, "escalated_village", "超期自动村级督办 / auto-escalated to village level"),
        (2, county_after, "escalated_county", "超期自动县级督办 / auto-escalated to county level"),
    ):
        rows = session.execute(
            text(
                f"""
                WITH c AS (
                    SELECT id, reported_at, escalation_level AS old_level FROM event
                     WHERE state = ANY(:states) AND due_at < :cutoff AND escalation_level < :level
                     FOR UPDATE
                ), u AS (
                    UPDATE event e SET escalation_level = :level, version = e.version + 1, updated_at = :now
                      FROM c WHERE e.id = c.id AND e.reported_at = c.reported_at
                    RETURNING e.id, e.reported_at, e.village_id, e.state, e.version,
                              jsonb_build_object('level', :level, 'from_level', c.old_level, 'auto', true,
                                                 'due_at', e.due_at) AS data
                ) {history}
                """
            ),
            {"states": escalate_states, "now": now, "cutoff": now - margin, "level": level,
             "action": Action.ESCALATE.value, "note": note},
        ).scalar_one()
        counts[key] = record_history(session, rows)
    return counts


# -- indicators -------------------------------------------------------------------

_INDICATOR_SQL = """
WITH base AS (
    SELECT e.dispatched_at, e.closed_at, e.due_at, e.sla_due_at, e.postpone_count,
           e.rework_count, least(e.closed_at, e.sla_due_at) AS settle_at {base_cols}
      FROM event e
     WHERE e.sla_due_at IS NOT NULL AND e.state <> 'rejected'
       AND ((e.sla_due_at >= :start AND e.sla_due_at < :end) OR (e.closed_at >= :start AND e.closed_at < :end))
       AND (CAST(:vids AS integer[]) IS NULL OR e.village_id = ANY(CAST(:vids AS integer[])))
), cohort AS (
    SELECT * FROM base WHERE settle_at >= :start AND settle_at < :end
), k AS (
    SELECT {group_col} AS grp,
           count(*) AS should_close,
           count(*) FILTER (WHERE closed_at < :end) AS closed,
           count(*) FILTER (WHERE closed_at < :end AND closed_at <= due_at) AS closed_on_time,
           count(*) FILTER (WHERE postpone_count > 0 AND due_at >= :end
                                  AND (closed_at IS NULL OR closed_at >= :end)) AS postponed,
           count(*) FILTER (WHERE rework_count > 0) AS reworked,
           avg(extract(epoch FROM closed_at - dispatched_at) / 3600.0) FILTER (WHERE closed_at < :end)
               AS avg_handling_hours
      FROM cohort GROUP BY 1
), r AS (
    SELECT {group_col_e} AS grp, count(*) AS reported
      FROM event e
     WHERE e.reported_at >= :start AND e.reported_at < :end
       AND (CAST(:vids AS integer[]) IS NULL OR e.village_id = ANY(CAST(:vids AS integer[])))
     GROUP BY 1
), o AS (
    SELECT {group_col_e} AS grp, count(*) AS open_overdue
      FROM event e
     WHERE e.sla_due_at IS NOT NULL AND e.state <> 'rejected' AND e.due_at < :as_of
       AND (e.closed_at IS NULL OR e.closed_at >= :as_of)
       AND (CAST(:vids AS integer[]) IS NULL OR e.village_id = ANY(CAST(:vids AS integer[])))
     GROUP BY 1
), grps AS (SELECT grp FROM k UNION SELECT grp FROM r UNION SELECT grp FROM o)
SELECT grps.grp, coalesce(r.reported, 0) AS reported, coalesce(k.should_close, 0) AS should_close,
       coalesce(k.closed, 0) AS closed, coalesce(k.closed_on_time, 0) AS closed_on_time,
       coalesce(k.postponed, 0) AS postponed, coalesce(k.reworked, 0) AS reworked,
       k.avg_handling_hours, coalesce(o.open_overdue, 0) AS open_overdue
  FROM grps LEFT JOIN k USING (grp) LEFT JOIN r USING (grp) LEFT JOIN o USING (grp)
"""


def _rate(num: int, den: int) -> float | None:
    return num / den if den > 0 else None


#: Columns :func:`indicators_grouped` may group by.
GROUPABLE = ("village_id", "town_id", "grid_uid", "department", "class_code", "subclass_code", "source", "urgency")


def _indicators_query(session, start, end, village_ids, now, by: str | None):
    start = _aware(start, "start")
    end = _aware(end, "end")
    if end <= start:
        raise EventInputError("结束时间必须晚于开始时间。", "The end must be after the start.", "end")
    db_now = session.execute(text("SELECT now()")).scalar() if now is None else _aware(now, "now")
    as_of = min(end, db_now)
    vids = None if village_ids is None else [int(v) for v in village_ids]
    if by is not None and by not in GROUPABLE:
        raise EventInputError(f"不能按 {by} 分组。", f"Cannot group by {by}.", "by")
    sql = _INDICATOR_SQL.format(
        base_cols=f", e.{by} AS grp_col" if by else "",
        group_col="grp_col" if by else "0",
        group_col_e=f"e.{by}" if by else "0",
    )
    rows = session.execute(
        text(sql), {"start": start, "end": end, "as_of": as_of, "vids": vids}
    ).mappings().all()
    return start, end, as_of, rows


def _make_indicators(start, end, as_of, row) -> Indicators:
    row = row or {}
    n, c, t = row.get("should_close", 0), row.get("closed", 0), row.get("closed_on_time", 0)
    p, w = row.get("postponed", 0), row.get("reworked", 0)
    avg = row.get("avg_handling_hours")
    return Indicators(
        start=start, end=end, as_of=as_of, reported=row.get("reported", 0), should_close=n, closed=c,
        closed_on_time=t, postponed=p, reworked=w, closure_rate=_rate(c, n - p), on_time_rate=_rate(t, n - p),
        rework_rate=_rate(w, n), avg_handling_hours=None if avg is None else float(avg),
        open_overdue=row.get("open_overdue", 0),
    )


def indicators(
    session: Session,
    start: datetime,
    end: datetime,
    village_ids: Sequence[int] | None = None,
    *,
    now: datetime | None = None,
) -> Indicators:
    """Performance indicators of the period ``[start, end)`` the GB way.

    The one implementation of the KPI formulas; the big screen and lists reuse it.
    Only events visible in the session's scope count (RLS), optionally narrowed
    to ``village_ids``.

    Definitions (each event counted in exactly one period):

    * **应结案数** (should close, N): events that were dispatched (SLA clock
      started, not rejected) whose *settlement date* — the earlier of their
      closing time and their original SLA deadline (``sla_due_at``) — falls in
      the period. I.e. the cases whose regulatory time limit expired in the
      period, plus those closed in the period before their limit expired.
    * **结案数** (closed, C): of N, those closed (结案) before the period's end.
    * **按期结案数** (closed on time, T): of C, those closed no later than their
      effective deadline (``due_at``, moved only by an approved 缓办).
    * **缓办数** (postponed, P): of N, those with an approved 缓办 whose new
      deadline lies at or after the period's end and that were not closed in
      the period — legitimately deferred, so taken out of the denominator.
    * **结案率** = C / (N − P); **按期结案率** = T / (N − P).
    * **返工率** = 返工数 / N, 返工数 = events of N sent back at least once by a
      failed 核查.
    * **平均处置时长** = mean of (closed_at − dispatched_at) over C, in hours.
    * **超期未结** (open overdue): counted separately, as of ``min(end, now)``:
      dispatched, not rejected, not closed by then, effective deadline passed —
      whatever period they belong to, so old rotting cases stay visible.

    Rates are ``None`` when their denominator is 0.

    Parameters
    ----------
    session : Session
    start, end : datetime
        The period (naive values are China time).
    village_ids : sequence of int, optional
        Restrict to these villages (county-queue events have none and drop out).
    now : datetime, optional
        Reference "now" for the open-overdue count (default the database's).

    Returns
    -------
    Indicators
    """
    start, end, as_of, rows = _indicators_query(session, start, end, village_ids, now, None)
    return _make_indicators(start, end, as_of, rows[0] if rows else None)


def indicators_grouped(
    session: Session, start: datetime, end: datetime, by: str, village_ids: Sequence[int] | None = None, *,
    now: datetime | None = None,
) -> dict[Any, Indicators]:
    """:func:`indicators` per group — same definitions, one query.

    Parameters
    ----------
    by : str
        One of :data:`GROUPABLE` (``village_id``, ``town_id``, ``grid_uid``, ``department``,
        ``class_code``, ``subclass_code``, ``source``, ``urgency``).
    start, end, village_ids, now
        As for :func:`indicators`.

    Returns
    -------
    dict
        group value (None for events without one, e.g. the county queue) → Indicators,
        for groups with anything counted.
    """
    start, end, as_of, rows = _indicators_query(session, start, end, village_ids, now, by)
    return {row["grp"]: _make_indicators(start, end, as_of, row) for row in rows}


def indicators_by_village(
    session: Session, start: datetime, end: datetime, village_ids: Sequence[int] | None = None, *,
    now: datetime | None = None,
) -> dict[int | None, Indicators]:
    """:func:`indicators` per village (key None = county queue); see :func:`indicators_grouped`."""
    return indicators_grouped(session, start, end, "village_id", village_ids, now=now)


# -- reading ---------------------------------------------------------------------

def get_event(session: Session, event_id: int, *, with_personal: bool = True) -> dict | None:
    """One event with its category, route and deadline facts, or None if not visible.

    Parameters
    ----------
    with_personal : bool
        Include reporter name/phone/e-mail (masking for roles that do not need
        them is the caller's decision, issue 3).
    """
    row = session.execute(
        text(
            """
            SELECT e.id, e.reported_at, e.state, e.version, e.village_id, v.name AS village, e.town_id,
                   t.name AS town, e.grid_uid::text AS grid_uid, e.grid_id, g.code AS grid_code,
                   g.name AS grid_name, e.worker_id, w.name AS worker, e.department,
                   d.name_zh AS department_zh, d.name_en AS department_en, e.queue, e.outside_grid,
                   e.boundary_pending, e.candidate_grid_uids::text[] AS candidate_grid_uids,
                   e.class_code, c.name_zh AS class_zh, c.name_en AS class_en, e.subclass_code,
                   s.name_zh AS subclass_zh, s.name_en AS subclass_en, e.description, e.urgency, e.source,
                   e.address, e.media_url, ST_X(e.geom) AS lon, ST_Y(e.geom) AS lat,
                   e.reporter_name, e.reporter_phone, e.reporter_email, e.reported_by,
                   e.dispatched_at, e.sla_due_at, e.due_at, e.postponed_until, e.postpone_count,
                   e.handled_at, e.verified_at, e.closed_at, e.evaluated_at, e.result, e.rating,
                   e.rework_count, e.escalation_level, e.overdue_at, e.updated_at,
                   (e.state <> ALL (:closed) AND e.due_at < now()) AS overdue
              FROM event e
              JOIN event_class c ON c.code = e.class_code
              JOIN event_subclass s ON s.code = e.subclass_code
              LEFT JOIN village v ON v.id = e.village_id
              LEFT JOIN town t ON t.id = e.town_id
              LEFT JOIN grid g ON g.id = e.grid_id
              LEFT JOIN person w ON w.id = e.worker_id
              LEFT JOIN department d ON d.code = e.department
             WHERE e.id = :id
            """
        ),
        {"id": int(event_id), "closed": [s.value for s in CLOSED]},
    ).mappings().first()
    if row is None:
        return None
    out = dict(row)
    if not with_personal:
        for key in ("reporter_name", "reporter_phone", "reporter_email"):
            out.pop(key)
    return out


def event_history(session: Session, event_id: int) -> list[dict]:
    """The event's timeline, oldest first."""
    return [
        dict(r)
        for r in session.execute(
            text(
                "SELECT id, at, actor, actor_role, action, from_state, to_state, version, note, data"
                " FROM event_history WHERE event_id = :id ORDER BY version"
            ),
            {"id": int(event_id)},
        ).mappings()
    ]


def event_photos(session: Session, event_id: int) -> list[dict]:
    """Photo metadata (no bytes) of an event, in upload order."""
    return [
        dict(r)
        for r in session.execute(
            text(
                "SELECT id, history_id, content_type, size, sha256, created_at FROM event_photo"
                " WHERE event_id = :id ORDER BY id"
            ),
            {"id": int(event_id)},
        ).mappings()
    ]


def photo_bytes(session: Session, photo_id: int) -> tuple[str, bytes] | None:
    """``(content_type, data)`` of one photo, or None if not visible."""
    row = session.execute(
        text("SELECT content_type, data FROM event_photo WHERE id = :id"), {"id": int(photo_id)}
    ).first()
    return (row.content_type, bytes(row.data)) if row else None


def categories(session: Session) -> list[dict]:
    """The two-level category tree: classes with their active subclasses, SLA and department."""
    rows = session.execute(
        text(
            """
            SELECT c.code AS class_code, c.kind, c.name_zh AS class_zh, c.name_en AS class_en,
                   s.code, s.name_zh, s.name_en, s.sensor_type, r.department,
                   d.name_zh AS department_zh, d.name_en AS department_en,
                   (SELECT jsonb_object_agg(l.urgency, l.hours) FROM event_sla l
                     WHERE l.subclass_code = s.code) AS sla_hours
              FROM event_class c
              JOIN event_subclass s ON s.class_code = c.code AND s.active
              LEFT JOIN event_routing r ON r.subclass_code = s.code
              LEFT JOIN department d ON d.code = r.department
             ORDER BY c.sort, s.sort
            """
        )
    ).mappings()
    tree: dict[str, dict] = {}
    for r in rows:
        cls = tree.setdefault(
            r["class_code"],
            {"code": r["class_code"], "kind": r["kind"], "name_zh": r["class_zh"], "name_en": r["class_en"],
             "subclasses": []},
        )
        cls["subclasses"].append({
            "code": r["code"], "name_zh": r["name_zh"], "name_en": r["name_en"], "sensor_type": r["sensor_type"],
            "department": r["department"], "department_zh": r["department_zh"],
            "department_en": r["department_en"],
            "sla_hours": {k: float(v) for k, v in (r["sla_hours"] or {}).items()},
        })
    return list(tree.values())


def reference_lists(session: Session) -> dict[str, list[dict]]:
    """Urgencies, sources and departments, for forms and filters."""
    out = {}
    for key, sql in (
        ("urgencies", "SELECT code, name_zh, name_en FROM event_urgency ORDER BY sort"),
        ("sources", "SELECT code, name_zh, name_en FROM event_source ORDER BY sort"),
        ("departments", "SELECT code, name_zh, name_en FROM department ORDER BY code"),
    ):
        out[key] = [dict(r) for r in session.execute(text(sql)).mappings()]
    return out


#: Fields an Open311 client may see (never reporter contact or names).
PUBLIC_FIELDS = (
    "id", "state", "subclass_code", "subclass_zh", "subclass_en", "description", "department_zh",
    "department_en", "reported_at", "updated_at", "due_at", "address", "lat", "lon", "media_url", "sla_hours",
)


def public_requests(
    session: Session,
    *,
    ids: Sequence[int] | None = None,
    service_codes: Sequence[str] | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    states: Iterable[str] | None = None,
    limit: int = 1000,
) -> list[dict]:
    """Events as public records (the fields of :data:`PUBLIC_FIELDS` only), newest first.

    Parameters
    ----------
    ids : sequence of int, optional
        When given, the other filters are ignored (as GeoReport v2 asks).
    service_codes : sequence of str, optional
    start, end : datetime, optional
        Report-time window ``[start, end]``.
    states : iterable of str, optional
    limit : int

    Returns
    -------
    list of dict
    """
    where, params = [], {"limit": int(limit)}
    if ids is not None:
        where.append("e.id = ANY(:ids)")
        params["ids"] = [int(i) for i in ids]
    else:
        if service_codes:
            where.append("e.subclass_code = ANY(:codes)")
            params["codes"] = list(service_codes)
        if start is not None:
            where.append("e.reported_at >= :start")
            params["start"] = _aware(start, "start")
        if end is not None:
            where.append("e.reported_at <= :end")
            params["end"] = _aware(end, "end")
        if states is not None:
            where.append("e.state = ANY(:states)")
            params["states"] = [State(s).value for s in states]
    sql = f"""
        SELECT e.id, e.state, e.subclass_code, s.name_zh AS subclass_zh, s.name_en AS subclass_en,
               e.description, d.name_zh AS department_zh, d.name_en AS department_en, e.reported_at,
               e.updated_at, e.due_at, e.address, ST_Y(e.geom) AS lat, ST_X(e.geom) AS lon, e.media_url,
               (SELECT l.hours FROM event_sla l WHERE l.subclass_code = e.subclass_code
                  AND l.urgency = e.urgency) AS sla_hours
          FROM event e
          JOIN event_subclass s ON s.code = e.subclass_code
          LEFT JOIN department d ON d.code = e.department
         {"WHERE " + " AND ".join(where) if where else ""}
         ORDER BY e.reported_at DESC, e.id DESC
         LIMIT :limit
    """
    return [dict(r) for r in session.execute(text(sql), params).mappings()]


# -- API clients (Open311) ----------------------------------------------------------

def _key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def create_api_client(
    session: Session, name: str, village_ids: Iterable[int] | None = None, source: str = "hotline"
) -> tuple[int, str]:
    """Issue an Open311 API key to a client system; the key is shown only once.

    Keys are 256-bit random tokens, stored as their SHA-256 (a slow KDF adds
    nothing for keys this long, and a hash lets a request find its client with
    one indexed lookup).

    Parameters
    ----------
    session : Session
        A session of the owner (CLI) or the app role (admin page); the caller commits.
    name : str
        Unique name of the client system.
    village_ids : iterable of int, optional
        Villages it may report into; None = the whole county.
    source : str
        ``event_source.code`` its events get (default ``hotline``, 12345).

    Returns
    -------
    (int, str)
        The client id and the plaintext key.
    """
    name = _check_text(name, "name", "名称", required=True, limit=100)
    key = "dvk_" + secrets.token_urlsafe(32)
    vids = None if village_ids is None else sorted({int(v) for v in village_ids})
    if not session.execute(text("SELECT EXISTS (SELECT 1 FROM event_source WHERE code = :c)"), {"c": source}).scalar():
        raise EventInputError(f"事件来源无效:{source}", f"Unknown event source: {source}", "source")
    client_id = session.execute(
        text(
            "INSERT INTO api_client (name, key_prefix, key_hash, village_ids, source)"
            " VALUES (:n, :p, :h, CAST(:v AS integer[]), :s) RETURNING id"
        ),
        {"n": name, "p": key[:10], "h": _key_hash(key), "v": vids, "s": source},
    ).scalar_one()
    return client_id, key


def find_api_client(session: Session, key: str | None) -> ApiClient | None:
    """The active client holding ``key``, or None."""
    if not key or not isinstance(key, str) or len(key) > 200:
        return None
    row = session.execute(
        text("SELECT id, name, village_ids, source, active FROM api_client WHERE key_hash = :h AND active"),
        {"h": _key_hash(key)},
    ).first()
    if row is None:
        return None
    vids = None if row.village_ids is None else frozenset(row.village_ids)
    return ApiClient(row.id, row.name, vids, row.source, row.active)


def deactivate_api_client(session: Session, client_id: int) -> bool:
    """Revoke a client's key; True if it was active."""
    return session.execute(
        text("UPDATE api_client SET active = false WHERE id = :id AND active"), {"id": int(client_id)}
    ).rowcount == 1
