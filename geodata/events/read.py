"""Reading events: one event, its timeline and photos, the category tree, public records."""
from __future__ import annotations

from datetime import datetime
from typing import Iterable, Sequence

from sqlalchemy import text
from sqlalchemy.orm import Session

from geodata.events.checks import _aware
from geodata.workflow import CLOSED, State

__all__ = ["get_event", "event_history", "event_photos", "photo_bytes", "categories", "reference_lists",
           "public_requests", "PUBLIC_FIELDS"]


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
                   e.position_accuracy_m, e.position_source,
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
    """Photo metadata (no bytes) of an event, in upload order.

    Returns
    -------
    list of dict
        ``id``, ``history_id``, ``content_type``, ``size``, ``sha256``, ``created_at``,
        and the server's stamp: ``step`` (report/before/after/verify), ``uploaded_by``,
        ``at`` (the time of the history row it came with), ``lon``/``lat`` and
        ``accuracy_m`` where the phone sent a position (else None).
    """
    return [
        dict(r)
        for r in session.execute(
            text(
                "SELECT p.id, p.history_id, p.content_type, p.size, p.sha256, p.created_at, p.step,"
                "       p.uploaded_by, h.at, ST_X(p.geom) AS lon, ST_Y(p.geom) AS lat, p.accuracy_m"
                "  FROM event_photo p LEFT JOIN event_history h ON h.id = p.history_id"
                " WHERE p.event_id = :id ORDER BY p.id"
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
