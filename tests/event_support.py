"""Helpers shared by the events UI tests (browser and integration)."""
from __future__ import annotations

import re
import struct
import zlib

from sqlalchemy import text


def png(width: int = 64, height: int = 48, rgb=(200, 40, 40)) -> bytes:
    """A real PNG file, made without an imaging library."""
    raw = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def remove_events(owner_engine, tag: str) -> int:
    """Delete the committed events whose description contains ``tag``, with their history,
    photos and idempotency keys (the history's append-only guard is lifted inside this
    transaction only). Returns how many events went."""
    from geodata.db import SYSTEM, apply_scope

    with owner_engine.begin() as conn:
        apply_scope(conn, SYSTEM)
        ids = "SELECT id FROM event WHERE description LIKE :tag"
        p = {"tag": f"%{tag}%"}
        conn.execute(text("ALTER TABLE event_history DISABLE TRIGGER event_history_append_only"))
        for sql in (f"DELETE FROM public_report WHERE event_id IN ({ids})",
                    f"DELETE FROM event_follower WHERE event_id IN ({ids})",
                    f"DELETE FROM event_merge WHERE kept_event_id IN ({ids}) OR merged_event_id IN ({ids})",
                    f"DELETE FROM event_photo WHERE event_id IN ({ids})",
                    f"DELETE FROM event_history WHERE event_id IN ({ids})",
                    f"DELETE FROM event_request WHERE event_id IN ({ids})"):
            conn.execute(text(sql), p)
        n = conn.execute(text("DELETE FROM event WHERE description LIKE :tag"), p).rowcount
        conn.execute(text("ALTER TABLE event_history ENABLE TRIGGER event_history_append_only"))
    return n


def login_client(client, username: str) -> None:
    """Sign a Flask test client in through the real login form (CSRF included)."""
    from etl.demo_accounts import demo_password

    page = client.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    resp = client.post("/login", data={"username": username, "password": demo_password(username), "csrf": csrf,
                                       "next": "/"})
    assert resp.status_code == 302, resp.get_data(as_text=True)[:300]
