"""Duplicates: suggestions for officials, merging (合并) and an administrator's unmerge.

A merge is the workflow action MERGE on the duplicate (its history row says where
it went), a note on the kept event, the duplicate's followers (and its reporter)
moved to the kept event, and its photos *copied* to the kept event: the app role
may not update or delete photos (append-only evidence, migration 0002), so an
unmerge moves the followers back but leaves the copies on the kept event, each
linked to the merge note's history row.

Unmerge returns the duplicate to the state it had before the merge (from
``event_merge.previous_state``, checked against its history). That target is not a
fixed row of :data:`geodata.workflow.TRANSITIONS`, so this module writes the state
itself — with the same optimistic lock and one history row through
:func:`geodata.events.record_history`, like the service's own writer.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.orm import Session

from geodata import events as ev
from geodata.public.common import PublicError, PublicSettings
from geodata.workflow import OPEN, Action, State, check_permission, restore_target


def duplicate_candidates(session: Session, event_id: int, *, settings: PublicSettings | None = None) -> list[dict]:
    """可能重复: open events of the same subclass within the duplicate distance and days of ``event_id``.

    Visible events only (RLS); nearest first. Empty when the event is not open.
    """
    settings = settings or PublicSettings.from_env()
    rows = session.execute(
        text("""SELECT o.id, o.state, o.version, o.reported_at,
                       round(ST_Distance(o.geom::geography, e.geom::geography)) AS metres
                  FROM event e JOIN event o ON o.subclass_code = e.subclass_code AND o.id <> e.id
                 WHERE e.id = :id AND e.state = ANY(:open) AND o.state = ANY(:open)
                   AND o.reported_at BETWEEN e.reported_at - make_interval(days => :d)
                                         AND e.reported_at + make_interval(days => :d)
                   AND ST_DWithin(o.geom::geography, e.geom::geography, :m)
                 ORDER BY metres, o.reported_at LIMIT 5"""),
        {"id": int(event_id), "open": [s.value for s in OPEN], "d": settings.duplicate_days,
         "m": float(settings.duplicate_metres)},
    ).mappings()
    return [dict(r, metres=int(r["metres"])) for r in rows]


def merge(session: Session, kept_id: int, merged_id: int, actor: ev.Actor, merged_version: int) -> dict:
    """Fold the duplicate ``merged_id`` into ``kept_id`` (合并), in the caller's transaction.

    Parameters
    ----------
    kept_id, merged_id : int
        Both open and visible; the kept one is not itself merged.
    actor : Actor
        Must be allowed MERGE (officials, grid managers, admin).
    merged_version : int
        The duplicate's version the decision was based on (optimistic lock).

    Returns
    -------
    dict
        ``{"merge_id", "kept_id", "merged_id", "followers_moved", "photos_copied"}``.
    """
    check_permission(actor.role, Action.MERGE)
    kept_id, merged_id = int(kept_id), int(merged_id)
    if kept_id == merged_id:
        raise PublicError("不能与自身合并。", "An event cannot be merged into itself.", code="merge_self")
    states = dict(session.execute(text("SELECT id, state FROM event WHERE id = ANY(:ids)"),
                                  {"ids": [kept_id, merged_id]}).all())
    if kept_id not in states or merged_id not in states:
        raise ev.EventNotFound(kept_id if kept_id not in states else merged_id)
    if State(states[kept_id]) not in OPEN:
        raise PublicError("保留的事件已经结束,不能合并到它。", "The kept event is no longer open.", code="merge_kept",
                          http_status=409)
    previous = states[merged_id]
    res = ev.transition(session, merged_id, Action.MERGE, actor, merged_version, note=f"合并到 #{kept_id}")
    note_id = ev.add_note(session, kept_id, actor, f"合并了重复事件 #{merged_id}", data={"merged_from": merged_id})
    moved = _move_followers(session, kept_id, merged_id)
    photos = _copy_photos(session, kept_id, merged_id, note_id)
    merge_id = session.execute(
        text("""INSERT INTO event_merge (kept_event_id, merged_event_id, village_id, previous_state, merged_by,
                                         merged_by_user_id, moved)
                SELECT :k, :m, e.village_id, :prev, :by, :uid, CAST(:moved AS jsonb) FROM event e WHERE e.id = :m
                RETURNING id"""),
        {"k": kept_id, "m": merged_id, "prev": previous, "by": actor.name, "uid": actor.user_id,
         "moved": json.dumps({"followers": moved, "photos": photos, "history_id": res.history_id})},
    ).scalar_one()
    return {"merge_id": merge_id, "kept_id": kept_id, "merged_id": merged_id, "followers_moved": len(moved),
            "photos_copied": len(photos)}


def _move_followers(session: Session, kept_id: int, merged_id: int) -> list[int]:
    # the duplicate's reporter becomes a follower of the kept event (keyed by their code's hash)
    session.execute(
        text("""INSERT INTO event_follower (event_id, follower_key, village_id, moved_from_event_id)
                SELECT :k, r.tracking_code_hash, e.village_id, :m
                  FROM public_report r JOIN event e ON e.id = :k
                 WHERE r.event_id = :m
                ON CONFLICT (event_id, follower_key) DO NOTHING"""),
        {"k": kept_id, "m": merged_id},
    )
    return list(session.execute(
        text("""UPDATE event_follower f SET event_id = :k, moved_from_event_id = :m,
                       village_id = (SELECT village_id FROM event WHERE id = :k)
                 WHERE f.event_id = :m
                   AND NOT EXISTS (SELECT 1 FROM event_follower g WHERE g.event_id = :k
                                     AND g.follower_key = f.follower_key)
                RETURNING f.id"""),
        {"k": kept_id, "m": merged_id},
    ).scalars())


def _copy_photos(session: Session, kept_id: int, merged_id: int, note_id: int) -> list[int]:
    return list(session.execute(
        text("""INSERT INTO event_photo (event_id, event_reported_at, village_id, history_id, content_type, size,
                                         sha256, data)
                SELECT k.id, k.reported_at, k.village_id, :h, p.content_type, p.size, p.sha256, p.data
                  FROM event_photo p JOIN event k ON k.id = :k
                 WHERE p.event_id = :m
                ON CONFLICT (event_id, sha256) DO NOTHING
                RETURNING id"""),
        {"k": kept_id, "m": merged_id, "h": note_id},
    ).scalars())


def unmerge(session: Session, merged_id: int, actor: ev.Actor, note: str) -> dict:
    """Undo the active merge of ``merged_id`` (administrators): back to its state before the merge.

    Returns
    -------
    dict
        ``{"event_id", "state", "version", "followers_moved_back"}``.
    """
    check_permission(actor.role, Action.UNMERGE)
    if not isinstance(note, str) or not note.strip():
        raise PublicError("撤销合并需要说明原因。", "Undoing a merge needs a reason.", code="note")
    m = session.execute(
        text("""SELECT id, kept_event_id, previous_state FROM event_merge
                 WHERE merged_event_id = :m AND undone_at IS NULL FOR UPDATE"""), {"m": int(merged_id)},
    ).mappings().first()
    cur = session.execute(
        text("SELECT id, reported_at, state, version FROM event WHERE id = :m"), {"m": int(merged_id)}
    ).mappings().first()
    if cur is None:
        raise ev.EventNotFound(merged_id)
    if m is None:
        raise ev.InvalidTransition(cur["state"], Action.UNMERGE)
    last = session.execute(
        text("""SELECT from_state FROM event_history WHERE event_id = :m AND action = 'merge'
                 ORDER BY version DESC LIMIT 1"""), {"m": int(merged_id)},
    ).scalar()
    if last != m["previous_state"]:  # the merge table and the history must tell the same story
        raise PublicError("合并记录与历史不一致。", "The merge record does not match the history.", code="merge_history",
                          http_status=409)
    target = restore_target(Action.UNMERGE, cur["state"], m["previous_state"])
    row = session.execute(
        text("""UPDATE event SET state = :t, version = version + 1, updated_at = now()
                 WHERE id = :id AND reported_at = :rat AND version = :v AND state = :merged
                RETURNING version, now() AS at"""),
        {"t": target.value, "id": cur["id"], "rat": cur["reported_at"], "v": cur["version"],
         "merged": State.MERGED.value},
    ).mappings().first()
    if row is None:
        raise ev.StaleVersion(cur["id"], cur["version"], cur["version"])
    ev.record_history(session, [{
        "event_id": cur["id"], "event_reported_at": cur["reported_at"], "at": row["at"], "actor": actor.name,
        "actor_role": actor.role, "actor_user_id": actor.user_id, "action": Action.UNMERGE.value,
        "from_state": State.MERGED.value, "to_state": target.value, "version": row["version"], "note": note.strip(),
        "data": {"kept_event_id": m["kept_event_id"], "merge_id": m["id"]},
    }])
    # the reporter's follower row on the kept event existed only because of the merge
    session.execute(
        text("""DELETE FROM event_follower WHERE event_id = :k AND moved_from_event_id = :m
                   AND follower_key IN (SELECT tracking_code_hash FROM public_report WHERE event_id = :m)"""),
        {"m": int(merged_id), "k": m["kept_event_id"]},
    )
    back = list(session.execute(
        text("""UPDATE event_follower SET event_id = :m, moved_from_event_id = NULL,
                       village_id = (SELECT village_id FROM event WHERE id = :m)
                 WHERE moved_from_event_id = :m AND event_id = :k
                RETURNING id"""),
        {"m": int(merged_id), "k": m["kept_event_id"]},
    ).scalars())
    session.execute(text("UPDATE event_merge SET undone_at = now(), undone_by = :by WHERE id = :id"),
                    {"by": actor.name, "id": m["id"]})
    ev.add_note(session, m["kept_event_id"], actor, f"撤销合并 #{merged_id}", data={"unmerged": int(merged_id)})
    return {"event_id": int(merged_id), "state": target.value, "version": row["version"],
            "followers_moved_back": len(back)}


def merge_rule_count(session: Session, *, metres: float = 50, days: int = 7) -> dict:
    """How many reports a same-subclass, ``metres`` / ``days`` rule would have merged (whole history).

    A report counts when an earlier report of the same subclass lies within ``metres``
    and ``days`` before it and was still open at the time (not closed/rejected before
    the later report). Used for the lead's note (``dvmap public duplicates``).

    Returns
    -------
    dict
        ``{"events", "would_merge", "share"}``.
    """
    row = session.execute(
        text("""SELECT count(*) AS events,
                       count(*) FILTER (WHERE EXISTS (
                           SELECT 1 FROM event o
                            WHERE o.subclass_code = e.subclass_code AND o.id <> e.id
                              AND o.reported_at <= e.reported_at
                              AND o.reported_at >= e.reported_at - make_interval(days => :d)
                              AND (o.closed_at IS NULL OR o.closed_at > e.reported_at)
                              AND o.state <> :rejected
                              AND ST_DWithin(o.geom::geography, e.geom::geography, :m)
                              AND (o.reported_at, o.id) < (e.reported_at, e.id))) AS would_merge
                  FROM event e"""),
        {"d": int(days), "m": float(metres), "rejected": State.REJECTED.value},
    ).mappings().one()
    n = int(row["events"])
    return {"events": n, "would_merge": int(row["would_merge"]), "share": (row["would_merge"] / n) if n else None}


@dataclass(frozen=True)
class MergeStep:
    """What :func:`panel_action` did, shaped like a transition result for the panel's message."""

    event_id: int
    action: str
    from_state: str
    to_state: str


def panel_action(session: Session, event_id: int, name: str, actor: ev.Actor, version, note=None) -> MergeStep:
    """The event panel's ``merge:<kept id>`` and ``unmerge`` buttons, for ``event_id``.

    Raises
    ------
    PublicError, PermissionDenied, InvalidTransition, EventNotFound, StaleVersion
    """
    before = session.execute(text("SELECT state FROM event WHERE id = :e"), {"e": int(event_id)}).scalar()
    if before is None:
        raise ev.EventNotFound(event_id)
    if name == Action.UNMERGE.value:
        out = unmerge(session, event_id, actor, note or "")
        return MergeStep(int(event_id), name, before, out["state"])
    try:
        kept = int(name.split(":", 1)[1])
        expected = int(version)
    except (IndexError, TypeError, ValueError):
        raise PublicError("合并参数无效。", "Invalid merge request.", code="merge") from None
    merge(session, kept, event_id, actor, expected)
    return MergeStep(int(event_id), Action.MERGE.value, before, State.MERGED.value)
