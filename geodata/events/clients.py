"""API clients (Open311): issue, find and revoke keys."""
from __future__ import annotations

import hashlib
import secrets
from typing import Iterable

from sqlalchemy import text
from sqlalchemy.orm import Session

from geodata.events.checks import _check_text
from geodata.events.errors import EventInputError
from geodata.identity import ApiClient

__all__ = ["create_api_client", "find_api_client", "deactivate_api_client"]


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
