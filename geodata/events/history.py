"""Writing an event's history rows and photos (shared by intake, transitions and notes).

Both are plain ``INSERT``s without ``RETURNING`` on purpose: a grid worker may
report into a neighbour's grid, whose rows RLS then hides from them, so ids
come from the sequences beforehand and nothing is read back.
"""
from __future__ import annotations

import json

from sqlalchemy import text
from sqlalchemy.orm import Session

from geodata.config import STORAGE_SRID
from geodata.events.checks import CheckedPhoto, _jsonable
from geodata.identity import Actor

__all__ = ["record_history"]

_INSERT_PHOTO = text(
    """
    INSERT INTO event_photo (event_id, event_reported_at, village_id, history_id, content_type, size, sha256, data,
                             step, geom, accuracy_m, uploaded_by)
    VALUES (:eid, :rat, :vid, :hid, :ct, :size, :sha, :data, :step,
            CASE WHEN CAST(:lon AS float8) IS NULL THEN NULL
                 ELSE ST_SetSRID(ST_MakePoint(:lon, :lat), :srid) END,
            :acc, :by)
    ON CONFLICT (event_id, sha256) DO NOTHING
    """
)


def record_history(session: Session, rows: list[dict]) -> int:
    """Append ``event_history`` rows through ``dvmap_record_history`` (migrations 0014, 0017).

    The app role may not insert history rows itself: the function checks each row
    against the event's current state and version and its last history row, so it
    must run after the event's own ``UPDATE``/``INSERT``, in the same transaction.

    Parameters
    ----------
    session : Session
    rows : list of dict
        Keys: ``event_id``, ``event_reported_at``, ``action``, ``from_state``,
        ``to_state``, ``version``, ``actor``, ``actor_role``, and optionally ``id``,
        ``at`` (default now), ``actor_user_id``, ``note``, ``data``, ``client_key``.

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


def _insert_history(session: Session, *, history_id, event_id, reported_at, at, actor: Actor, action: str,
                    from_state, to_state, version: int, note, data: dict, client_key: str | None = None) -> None:
    # village_id is not sent: dvmap_record_history takes it from the event row itself.
    row = {
        "id": history_id, "event_id": event_id, "event_reported_at": reported_at, "at": at,
        "actor": actor.name, "actor_role": actor.role, "actor_user_id": actor.user_id, "action": action,
        "from_state": from_state, "to_state": to_state, "version": version, "note": note,
        "data": _jsonable(data),
    }
    if client_key is not None:
        row["client_key"] = client_key
    record_history(session, [row])


def _new_photos(session: Session, event_id: int | None, photos: list[CheckedPhoto]) -> tuple[list[CheckedPhoto], int]:
    """The photos that will be stored, and how many are dropped as duplicates.

    An event keeps one copy of a picture (``UNIQUE (event_id, sha256)``): a second
    identical file in the same upload, or one the event already has, is dropped —
    and counted, so the timeline reports what was really kept (issue 18). Run it
    after the event's row is locked (its ``UPDATE``), so no other writer adds
    photos in between.
    """
    if not photos:
        return [], 0
    known: set[str] = set()
    if event_id is not None:
        known = set(session.execute(
            text("SELECT sha256 FROM event_photo WHERE event_id = :id AND sha256 = ANY(:shas)"),
            {"id": event_id, "shas": [p.sha256 for p in photos]},
        ).scalars())
    keep = []
    for photo in photos:
        if photo.sha256 not in known:
            known.add(photo.sha256)
            keep.append(photo)
    return keep, len(photos) - len(keep)


def _photo_facts(kept: list[CheckedPhoto], duplicates: int) -> dict:
    """What a history row says about its photos (absent keys = none)."""
    facts = {}
    if kept:
        facts["photos"] = len(kept)
    if duplicates:
        facts["photos_duplicate"] = duplicates
    return facts


def _insert_photos(session: Session, event_id, reported_at, village_id, history_id, photos: list[CheckedPhoto],
                   *, step: str, uploaded_by: str) -> None:
    """Store photos; ``step`` is used for those that do not name their own."""
    for p in photos:
        session.execute(_INSERT_PHOTO, {
            "eid": event_id, "rat": reported_at, "vid": village_id, "hid": history_id, "ct": p.content_type,
            "size": len(p.data), "sha": p.sha256, "data": p.data, "step": p.step or step,
            "lon": p.lon, "lat": p.lat, "srid": STORAGE_SRID, "acc": p.accuracy_m, "by": uploaded_by,
        })
