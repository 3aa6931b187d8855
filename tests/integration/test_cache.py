"""Cached layer data: reused while nothing changes, recomputed after a change, never shared across scopes."""
from __future__ import annotations

import pytest
from sqlalchemy import text

from geodata import events as ev
from geodata.db import SYSTEM, Scope


@pytest.fixture(scope="module")
def app(pg, demo_db):
    from map_app.app import create_app

    return create_app(pg.app_url)


def test_cache_hits_until_events_change_and_scopes_do_not_share(app):
    from callbacks.cache import cached

    database = app.server.extensions["dvmap"]
    calls = []

    def compute(session):
        calls.append(1)
        return session.execute(text("SELECT count(*) FROM event")).scalar()

    with app.server.app_context():
        with database.session(SYSTEM) as s:
            first = cached(s, "test", "events", ("event",), lambda: compute(s))
            again = cached(s, "test", "events", ("event",), lambda: compute(s))
            assert first == again and len(calls) == 1
            x, y = s.execute(text("SELECT ST_X(label_point), ST_Y(label_point) FROM village LIMIT 1")).one()
            ev.create_event(s, lon=x, lat=y, subclass="0101", description="缓存测试", source="patrol",
                            actor=ev.Actor.system())
            s.commit()
            after = cached(s, "test", "events", ("event",), lambda: compute(s))
            assert after == first + 1 and len(calls) == 2
            # A change to another family does not evict this entry.
            s.execute(text("UPDATE sensor SET status = status WHERE id = (SELECT min(id) FROM sensor)"))
            s.commit()
            cached(s, "test", "events", ("event",), lambda: compute(s))
            assert len(calls) == 2
        vid = None
        with database.session(SYSTEM) as s:
            vid = s.execute(text("SELECT min(id) FROM village")).scalar()
        with database.session(Scope.villages([vid], "village_official")) as s:
            mine = cached(s, "test", "events", ("event",), lambda: compute(s))
        assert len(calls) == 3 and mine <= after
