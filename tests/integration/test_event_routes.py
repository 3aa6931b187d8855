"""Event photos over HTTP: served with the logged-in user's scope, 404 for anything else."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import text

from tests.event_support import login_client, png, remove_events

TAG = "[photo-route-test]"


@pytest.fixture(scope="module")
def app(pg, demo_db):
    from map_app.app import create_app

    return create_app(pg.app_url)


@pytest.fixture(scope="module")
def photos(app_engine, owner_engine, demo_db):
    """One event with a photo in the demo official's village, one in a village of another town.

    Reported 400 days ago, so no time window of the other tests sees them.
    """
    from geodata import events as ev
    from geodata.db import SYSTEM, make_sessionmaker, scoped

    when = datetime.now(timezone.utc) - timedelta(days=400)
    out = {}
    with scoped(make_sessionmaker(app_engine), SYSTEM) as s, s.begin():
        own = s.execute(text("SELECT village_id FROM app_user WHERE username = 'village'")).scalar_one()
        other = s.execute(text(
            "SELECT v.id FROM village v WHERE v.town_id <> (SELECT town_id FROM village WHERE id = :v)"
            " ORDER BY v.id LIMIT 1"), {"v": own}).scalar_one()
        for key, vid, color in (("own", own, (200, 0, 0)), ("other", other, (0, 0, 200))):
            lon, lat = s.execute(text("SELECT ST_X(label_point), ST_Y(label_point) FROM village WHERE id = :v"),
                                 {"v": vid}).one()
            data = png(rgb=color)
            ref = ev.create_event(s, lon=lon, lat=lat, subclass="0101", description=f"照片路由 {key} {TAG}",
                                  source="patrol", actor=ev.Actor.system(), photos=[data], reported_at=when)
            pid = s.execute(text("SELECT id FROM event_photo WHERE event_id = :e"), {"e": ref.id}).scalar_one()
            out[key] = {"event": ref.id, "photo": pid, "bytes": data, "village": ref.village_id}
    assert out["own"]["village"] == own and out["other"]["village"] == other
    yield out
    remove_events(owner_engine, TAG)


def _url(item, photo=None):
    return f"/events/{item['event']}/photos/{photo or item['photo']}"


def test_official_gets_own_village_photo_and_404_for_another_village(app, photos):
    client = app.server.test_client()
    login_client(client, "village")
    resp = client.get(_url(photos["own"]))
    assert resp.status_code == 200
    assert resp.mimetype == "image/png" and resp.get_data() == photos["own"]["bytes"]
    assert "private" in resp.headers["Cache-Control"]
    # Another village's photo looks exactly like a missing one.
    assert client.get(_url(photos["other"])).status_code == 404
    assert client.get("/events/999999999/photos/1").status_code == 404
    # A visible event with another event's photo id: no.
    assert client.get(_url(photos["own"], photos["other"]["photo"])).status_code == 404


def test_county_scope_sees_both_and_anonymous_sees_none(app, photos):
    client = app.server.test_client()
    assert client.get(_url(photos["own"])).status_code == 401  # the login guard covers the route
    login_client(client, "leader")
    for key in ("own", "other"):
        resp = client.get(_url(photos[key]))
        assert resp.status_code == 200 and resp.get_data() == photos[key]["bytes"]
