"""Reporting an event: validate, route by location inside PostGIS, store, idempotently.

Routing is ``dvmap_route_event`` (containing current grid → worker, village, town;
department from ``event_routing``; outside every grid → village or county queue;
boundary guard). A repeated submission with the same ``client_key`` returns the
first event and writes nothing.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Iterable, Mapping

from sqlalchemy import text
from sqlalchemy.orm import Session

from geodata.config import STORAGE_SRID
from geodata.events.checks import (
    _EMAIL, _PHONE, MAX_DESCRIPTION, CheckedPhoto, _aware, _check_accuracy, _check_client_key,
    _check_coordinates, _check_photos, _check_position_source, _check_text, _scope, boundary_metres,
)
from geodata.events.errors import EventInputError
from geodata.events.history import _insert_history, _insert_photos, _new_photos, _photo_facts
from geodata.events.types import EventRef, PhotoIn
from geodata.identity import Actor
from geodata.workflow import INITIAL, PUBLIC_INITIAL, REPORT, PermissionDenied, State, check_may_report

__all__ = ["create_event"]

#: ``event_photo.step`` of the photos sent with a report
REPORT_STEP = "report"


@dataclass(frozen=True)
class _Report:
    """The checked free inputs of a report (the reference codes are checked against the database)."""

    lon: float
    lat: float
    description: str
    reporter_name: str | None
    reporter_phone: str | None
    reporter_email: str | None
    address: str | None
    media_url: str | None
    client_key: str | None
    photos: list[CheckedPhoto]
    reported_at: datetime | None
    boundary_m: float
    position_accuracy_m: float | None
    position_source: str | None


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
    photos: Iterable[bytes | PhotoIn] = (),
    client_key: str | None = None,
    address: str | None = None,
    media_url: str | None = None,
    sensor_id: int | None = None,
    api_client_id: int | None = None,
    reported_at: datetime | None = None,
    boundary_m: float | None = None,
    position_accuracy_m: float | None = None,
    position_source: str | None = None,
    initial_state: State = INITIAL,
) -> EventRef:
    """Report an event at a point and route it, in the caller's transaction.

    Long only by its keyword parameters and their documentation: the body checks
    (:func:`_validate_report`), routes (:func:`_checked_route`) and stores through
    private helpers.

    Parameters
    ----------
    session : Session
        A scoped session (its ``info['scope']`` decides which villages the
        reporter may report into).
    lon, lat : float
        Location in the storage CRS (CGCS2000 degrees); must lie inside the county.
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
    photos : iterable of bytes or PhotoIn
        JPEG, PNG or WebP files, each at most 5 MB, at most 9; a :class:`PhotoIn`
        also carries its step (default ``report``) and where it was taken. A file
        the event already has is kept once and counted in the history row's
        ``photos_duplicate``.
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
    position_accuracy_m : float, optional
        Accuracy radius of the point in metres (0–100000), e.g. the phone's GPS fix.
    position_source : str, optional
        Where the point came from: ``gps``, ``tap`` (picked on the map),
        ``address`` (geocoded) or ``sensor``.
    initial_state : State, optional
        :data:`~geodata.workflow.INITIAL` (default) or, for a villager's public report,
        :data:`~geodata.workflow.PUBLIC_INITIAL` (待核实, issue 17).

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
    initial = _check_initial(initial_state)
    rep = _validate_report(lon, lat, description, reporter_name, reporter_phone, reporter_email, address,
                           media_url, client_key, photos, reported_at, boundary_m, position_accuracy_m,
                           position_source)
    ref = _reference_row(session, subclass, urgency, source)
    route = _checked_route(session, rep, subclass)
    at = rep.reported_at or ref["now"]
    event_id, history_id = ref["event_id"], ref["history_id"]
    if rep.client_key is not None and not _claim_key(session, rep.client_key, event_id, at, route["village_id"]):
        return _replayed(session, rep.client_key)

    candidates = [str(u) for u in (route["candidate_grid_uids"] or [])]
    _insert_event(session, rep, route, candidates, event_id=event_id, at=at, class_code=ref["class_code"],
                  subclass=subclass, urgency=urgency, source=source, actor=actor, sensor_id=sensor_id,
                  api_client_id=api_client_id, state=initial)
    kept, duplicates = _new_photos(session, None, rep.photos)
    route_data = {
        "queue": route["queue"], "grid_uid": route["grid_uid"], "worker_id": route["worker_id"],
        "department": route["department"], "village_id": route["village_id"], "town_id": route["town_id"],
        "outside_grid": route["outside_grid"], "boundary_pending": route["boundary_pending"],
        "candidate_grid_uids": candidates, "source": source, "subclass": subclass, "urgency": urgency,
        **_photo_facts(kept, duplicates),
    }
    _insert_history(
        session, history_id=history_id, event_id=event_id, reported_at=at, at=at, actor=actor, action=REPORT,
        from_state=None, to_state=initial.value, version=1, note=None, data=route_data,
    )
    _insert_photos(session, event_id, at, route["village_id"], history_id, kept, step=REPORT_STEP,
                   uploaded_by=actor.name)
    return _ref_from_route(event_id, at, route, candidates, history_id, initial)


def _validate_report(lon, lat, description, reporter_name, reporter_phone, reporter_email, address, media_url,
                     client_key, photos, reported_at, boundary_m, position_accuracy_m,
                     position_source) -> _Report:
    """Check every free input of a report (no database), or raise EventInputError."""
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
    client_key = _check_client_key(client_key)
    checked_photos = _check_photos(photos)
    if reported_at is not None:
        reported_at = _aware(reported_at, "reported_at")
    metres = boundary_metres() if boundary_m is None else float(boundary_m)
    if not math.isfinite(metres) or metres < 0:
        raise EventInputError("边界距离无效。", "Invalid boundary distance.", "boundary_m")
    return _Report(lon_f, lat_f, description, reporter_name, reporter_phone, reporter_email, address, media_url,
                   client_key, checked_photos, reported_at, metres,
                   _check_accuracy(position_accuracy_m, "position_accuracy_m"),
                   _check_position_source(position_source))


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


def _checked_route(session: Session, rep: _Report, subclass: str) -> Mapping:
    """Route the point in PostGIS; refuse points outside the county or the caller's villages."""
    route = session.execute(
        text("SELECT * FROM dvmap_route_event(:lon, :lat, :sc, :m)"),
        {"lon": rep.lon, "lat": rep.lat, "sc": subclass, "m": rep.boundary_m},
    ).mappings().one()
    if not route["inside_county"]:
        raise EventInputError(
            "该位置不在本县范围内。", "This location is outside the county.", "location"
        )
    scope = _scope(session)
    if scope is not None and not scope.allows_village(route["village_id"]):
        raise PermissionDenied(
            "该位置不在您可以上报的村范围内。", "This location is outside the villages you may report into."
        )
    return route


def _claim_key(session: Session, client_key: str, event_id: int, at: datetime, village_id) -> bool:
    """Claim ``client_key`` for the new event; False when an earlier submission holds it."""
    claimed = session.execute(
        text(
            "INSERT INTO event_request (client_key, event_id, reported_at, village_id)"
            " VALUES (:k, :id, :at, :v) ON CONFLICT (client_key) DO NOTHING RETURNING event_id"
        ),
        {"k": client_key, "id": event_id, "at": at, "v": village_id},
    ).first()
    return claimed is not None


_INSERT_EVENT = text(
    """
    INSERT INTO event (id, reported_at, village_id, town_id, grid_uid, grid_id, worker_id, department,
                       queue, outside_grid, boundary_pending, candidate_grid_uids, class_code,
                       subclass_code, description, urgency, source, address, media_url, geom,
                       position_accuracy_m, position_source,
                       reporter_name, reporter_phone, reporter_email, reported_by, api_client_id,
                       sensor_id, state, version, updated_at)
    VALUES (:id, :at, :village_id, :town_id, :grid_uid, :grid_id, :worker_id, :department,
            :queue, :outside_grid, :boundary_pending, CAST(:candidates AS uuid[]), :class_code,
            :subclass, :description, :urgency, :source, :address, :media_url,
            ST_SetSRID(ST_MakePoint(:lon, :lat), :srid), :accuracy, :position_source,
            :reporter_name, :reporter_phone, :reporter_email, :reported_by, :api_client_id,
            :sensor_id, :state, 1, :at)
    """
)


def _insert_event(session: Session, rep: _Report, route: Mapping, candidates: list[str], *, event_id: int,
                  at: datetime, class_code: str, subclass: str, urgency: str, source: str, actor: Actor,
                  sensor_id, api_client_id, state: State = INITIAL) -> None:
    # No RETURNING: a grid worker may report into a neighbour's grid, which RLS
    # then hides from them; ids come from the sequences instead.
    session.execute(_INSERT_EVENT, {
        "id": event_id, "at": at, "village_id": route["village_id"], "town_id": route["town_id"],
        "grid_uid": route["grid_uid"], "grid_id": route["grid_id"], "worker_id": route["worker_id"],
        "department": route["department"], "queue": route["queue"], "outside_grid": route["outside_grid"],
        "boundary_pending": route["boundary_pending"], "candidates": candidates,
        "class_code": class_code, "subclass": subclass, "description": rep.description, "urgency": urgency,
        "source": source, "address": rep.address, "media_url": rep.media_url, "lon": rep.lon, "lat": rep.lat,
        "srid": STORAGE_SRID, "accuracy": rep.position_accuracy_m, "position_source": rep.position_source,
        "reporter_name": rep.reporter_name, "reporter_phone": rep.reporter_phone,
        "reporter_email": rep.reporter_email, "reported_by": actor.name, "api_client_id": api_client_id,
        "sensor_id": sensor_id, "state": state.value,
    })


def _check_initial(value) -> State:
    """The state a new event starts in: INITIAL, or 待核实 for a villager's public report."""
    try:
        state = State(value)
    except ValueError:
        state = None
    if state not in (INITIAL, PUBLIC_INITIAL):
        raise EventInputError(f"初始状态无效:{value}", f"Invalid initial state: {value}", "initial_state")
    return state


def _ref_from_route(event_id: int, at: datetime, route: Mapping, candidates: list[str],
                    history_id: int, state: State = INITIAL) -> EventRef:
    grid_uid = route["grid_uid"]
    return EventRef(
        id=event_id, reported_at=at, state=state.value, version=1, created=True,
        village_id=route["village_id"], town_id=route["town_id"],
        grid_uid=str(grid_uid) if grid_uid else None, grid_id=route["grid_id"],
        worker_id=route["worker_id"], department=route["department"], queue=route["queue"],
        outside_grid=route["outside_grid"], boundary_pending=route["boundary_pending"],
        candidate_grid_uids=tuple(candidates), history_id=history_id,
    )


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
