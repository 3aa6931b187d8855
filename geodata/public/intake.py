"""A villager's report (随手拍), the open reports near it, and 我也遇到了 (me too).

Reports enter as 待核实 (:data:`geodata.workflow.PUBLIC_INITIAL`) through
:func:`geodata.events.create_event`, so routing, photo checks and idempotency are
the officials' own. Nothing here returns a person's name, phone or an event in a
sensitive subclass.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.orm import Session

from geodata import events as ev
from geodata.config import STORAGE_SRID
from geodata.public.common import (PUBLIC_EVENT_SQL, PublicError, PublicNotFound, PublicSettings, category,
                                   code_hash, new_tracking_code, normalise_phone, personal_hash, plain_text)
from geodata.workflow import OPEN, PUBLIC_INITIAL, STATE_LABELS, State

#: Most photos a villager attaches (resized in the browser to ≤ 1600 px).
MAX_PUBLIC_PHOTOS = 3
MAX_PUBLIC_DESCRIPTION = 500
#: event.position_source values a villager's page sends (the phone's GPS, a tap on the map)
POSITION_SOURCES = ("gps", "tap")
#: Who a public report is recorded as (history ``actor``): never the villager's name.
PUBLIC_ACTOR = ev.Actor("群众随手拍", "citizen")


@dataclass(frozen=True)
class PublicReceipt:
    """What the reporter gets back: the tracking code, shown once."""

    tracking_code: str
    event_id: int
    created: bool


def submit_report(session: Session, *, category_key: str, description, lon, lat, position_source: str = "gps",
                  accuracy_m=None, phone=None, photos=(), client_ip: str | None = None,
                  client_key: str | None = None, pepper: str = "") -> PublicReceipt:
    """Create a villager's report as 待核实 and its tracking code, in the caller's transaction.

    Parameters
    ----------
    session : Session
        A county-scoped session (role ``citizen``).
    category_key : str
        One of :data:`geodata.public.common.CATEGORIES` (plain words → GB subclass).
    description : str
        Plain text, 1–500 characters.
    lon, lat : float
        Where (CGCS2000 degrees); must lie in the county.
    position_source : str
        ``gps`` (the phone's location) or ``tap`` (a tap on the map).
    accuracy_m : float, optional
        The phone's reported accuracy (metres) for a GPS position.
    phone : str, optional
        Personal: kept for officials of the village, hashed for limits and points.
    photos : sequence of bytes
        At most 3; the officials' type and size checks apply.
    client_ip : str, optional
        Kept only as a keyed hash (abuse review).
    client_key : str, optional
        The browser's idempotency key: a resubmission (a retry after a lost answer) is
        refused with 409, never a second event (the code cannot be shown twice: only its hash is kept).
    pepper : str
        The app's secret for :func:`~geodata.public.common.personal_hash`.

    Returns
    -------
    PublicReceipt
    """
    _key, _zh, _en, subclass = category(category_key)
    text_ = plain_text(description, limit=MAX_PUBLIC_DESCRIPTION, required=True, zh="问题描述", en="description")
    phone_norm = normalise_phone(phone)
    if position_source not in POSITION_SOURCES:
        raise PublicError("位置来源无效。", "Invalid position source.", code="position_source")
    photos = list(photos or ())
    if len(photos) > MAX_PUBLIC_PHOTOS:
        raise PublicError(f"照片最多 {MAX_PUBLIC_PHOTOS} 张。", f"At most {MAX_PUBLIC_PHOTOS} photos.", code="photos")
    ref = ev.create_event(
        session, lon=lon, lat=lat, subclass=subclass, description=text_, source="citizen", actor=PUBLIC_ACTOR,
        reporter_phone=phone_norm, photos=photos, initial_state=PUBLIC_INITIAL, position_source=position_source,
        position_accuracy_m=_accuracy(accuracy_m) if position_source == "gps" else None,
        client_key=f"public:{client_key}" if client_key else None,
    )
    if not ref.created:
        raise PublicError("这条反映已经提交过了。", "This report was already submitted.", code="duplicate_submit",
                          http_status=409)
    code = new_tracking_code()
    session.execute(
        text(
            """INSERT INTO public_report (event_id, reported_at, tracking_code_hash, phone, phone_hash, client_ip_hash,
                                          village_id)
               VALUES (:eid, :at, :code, :phone, :ph, :ip, :vid)"""
        ),
        {"eid": ref.id, "at": ref.reported_at, "code": code_hash(code), "phone": phone_norm,
         "ph": personal_hash(phone_norm, pepper) if phone_norm else None,
         "ip": personal_hash(client_ip, pepper) if client_ip else None, "vid": ref.village_id},
    )
    return PublicReceipt(code, ref.id, True)


_NEARBY_SQL = f"""
    SELECT e.id, e.state, e.subclass_code, s.name_zh, s.name_en, e.reported_at,
           round(ST_Distance(e.geom::geography, ST_SetSRID(ST_MakePoint(:lon, :lat), :srid)::geography)) AS metres,
           (SELECT p.id FROM event_photo p WHERE p.event_id = e.id ORDER BY p.id LIMIT 1) AS photo_id,
           (SELECT count(*) FROM event_follower f WHERE f.event_id = e.id) AS followers
      FROM event e JOIN event_subclass s ON s.code = e.subclass_code
     WHERE e.state = ANY(:open) AND e.class_code = :class
       AND ST_DWithin(e.geom::geography, ST_SetSRID(ST_MakePoint(:lon, :lat), :srid)::geography, :m)
       AND {PUBLIC_EVENT_SQL}
     ORDER BY metres, e.id
     LIMIT 10
"""


def nearby(session: Session, *, lon, lat, category_key: str, settings: PublicSettings | None = None) -> list[dict]:
    """Open, non-sensitive events of the category's class within the nearby distance (default 50 m).

    Returns public fields only: id, category name, public status, distance, photo id,
    followers count (no description: it may name people).
    """
    settings = settings or PublicSettings.from_env()
    subclass = category(category_key)[3]
    lon_f, lat_f = _point(lon, lat)
    rows = session.execute(text(_NEARBY_SQL), {
        "lon": lon_f, "lat": lat_f, "srid": STORAGE_SRID, "m": float(settings.nearby_metres), "class": subclass[:2],
        "open": [s.value for s in OPEN],
    }).mappings()
    return [
        {"id": r["id"], "subclass_zh": r["name_zh"], "subclass_en": r["name_en"], "state": r["state"],
         "status_zh": _label(r["state"])[0], "status_en": _label(r["state"])[1], "metres": int(r["metres"]), "photo_id": r["photo_id"],
         "followers": int(r["followers"]), "reported_at": r["reported_at"]}
        for r in rows
    ]


def _accuracy(value) -> float | None:
    try:
        metres = float(value)
    except (TypeError, ValueError):
        return None
    return metres if 0 <= metres <= 100000 else None


def _point(lon, lat) -> tuple[float, float]:
    try:
        lon_f, lat_f = float(lon), float(lat)
    except (TypeError, ValueError):
        raise PublicError("位置无效。", "Invalid location.", code="location") from None
    if not (-180 <= lon_f <= 180 and -90 <= lat_f <= 90):
        raise PublicError("位置无效。", "Invalid location.", code="location")
    return lon_f, lat_f


#: Public wording of states (plain words for a villager; the officials' labels otherwise).
STATE_LABELS_PUBLIC: dict[str, tuple[str, str]] = {
    "pending_verification": ("待核实", "Waiting to be checked"),
    "reported": ("已受理", "Accepted"),
    "accepted": ("已立案", "Registered as a case"),
    "dispatched": ("已派人处理", "Someone is assigned"),
    "in_progress": ("处理中", "Being handled"),
    "postponed": ("延期处理", "Postponed"),
    "handled": ("已处理,待核查", "Handled, being checked"),
    "verified": ("已核查", "Checked"),
    "closed": ("已办结", "Done"),
    "evaluated": ("已办结并评价", "Done and rated"),
    "rejected": ("不予受理", "Not accepted"),
    "merged": ("已与同一问题合并", "Merged with the same problem"),
}


def _label(state: str) -> tuple[str, str]:
    return STATE_LABELS_PUBLIC.get(state) or STATE_LABELS[state]


def follow(session: Session, event_id, *, device_key: str | None = None, phone=None, pepper: str = "") -> dict:
    """我也遇到了: count this person (phone, else the browser's device key) on an open public event.

    Returns ``{"event_id", "followers", "added"}``; following twice counts once.
    """
    try:
        eid = int(event_id)
    except (TypeError, ValueError):
        raise PublicNotFound() from None
    phone_norm = normalise_phone(phone)
    if phone_norm:
        key = personal_hash("phone:" + phone_norm, pepper)
    elif isinstance(device_key, str) and 16 <= len(device_key) <= 100:
        key = personal_hash("device:" + device_key, pepper)
    else:
        raise PublicError("缺少设备标识。", "A device key is required.", code="device_key")
    row = session.execute(
        text(f"SELECT e.id, e.village_id FROM event e WHERE e.id = :id AND e.state = ANY(:open) AND {PUBLIC_EVENT_SQL}"),
        {"id": eid, "open": [s.value for s in OPEN]},
    ).first()
    if row is None:
        raise PublicNotFound()
    added = session.execute(
        text("""INSERT INTO event_follower (event_id, follower_key, village_id) VALUES (:e, :k, :v)
                ON CONFLICT (event_id, follower_key) DO NOTHING RETURNING id"""),
        {"e": eid, "k": key, "v": row.village_id},
    ).first() is not None
    return {"event_id": eid, "followers": followers(session, eid), "added": added}


def followers(session: Session, event_id: int) -> int:
    """关注人数: people who said "me too" on the event (merged duplicates' reporters included)."""
    return int(session.execute(text("SELECT count(*) FROM event_follower WHERE event_id = :e"),
                               {"e": int(event_id)}).scalar_one())


def public_photo(session: Session, photo_id) -> tuple[str, bytes]:
    """Bytes of a photo of a public (non-sensitive, not rejected) event; PublicNotFound otherwise.

    Only the report and after (处置后) photos are public: before/verify photos are the officials' working
    record and may show more than the reporter saw.
    """
    try:
        pid = int(photo_id)
    except (TypeError, ValueError):
        raise PublicNotFound() from None
    row = session.execute(
        text(f"""SELECT p.content_type, p.data FROM event_photo p JOIN event e ON e.id = p.event_id
                  WHERE p.id = :id AND e.state <> :rejected AND {PUBLIC_EVENT_SQL}
                    -- what was reported and the result, never the officials' working photos
                    AND coalesce(p.step, 'report') IN ('report', 'after')"""),
        {"id": pid, "rejected": State.REJECTED.value},
    ).first()
    if row is None:
        raise PublicNotFound()
    return row.content_type, bytes(row.data)


def check_code(code: str) -> str:
    """The hash of a well-formed tracking code (PublicNotFound for a malformed one)."""
    return code_hash(code)
