"""The append-only audit log: logins, failed logins and every data change."""
from __future__ import annotations

import json

from sqlalchemy import text
from sqlalchemy.orm import Session


def record(session: Session, action: str, *, target: str | None = None, detail: dict | None = None,
           user_id: int | None = None, username: str | None = None, ip: str | None = None) -> None:
    """Append one audit row in the caller's transaction.

    Parameters
    ----------
    action : str
        Dotted verb, e.g. ``login``, ``login.failed``, ``event.transition``, ``grid.save``.
    target : str, optional
        What was acted on (username, ``event:123`` …).
    user_id, username : optional
        The actor; when omitted, the user id of the transaction's scope is used.
    """
    session.execute(
        text(
            """INSERT INTO audit_log (user_id, username, action, target, detail, ip)
               VALUES (coalesce(:uid, nullif(current_setting('dvmap.user_id', true), '')::integer),
                       :uname, :action, :target, CAST(:detail AS jsonb), :ip)"""
        ),
        {"uid": user_id, "uname": username, "action": action, "target": target,
         "detail": json.dumps(detail or {}, ensure_ascii=False, default=str), "ip": ip},
    )


def recent(session: Session, limit: int = 100) -> list[dict]:
    """The newest audit rows, newest first."""
    rows = session.execute(
        text("SELECT id, at, user_id, username, action, target, detail, ip FROM audit_log ORDER BY id DESC LIMIT :n"),
        {"n": limit},
    ).mappings()
    return [dict(r) for r in rows]
