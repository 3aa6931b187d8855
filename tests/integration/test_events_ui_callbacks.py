"""The report callbacks against the real PostGIS, called as the server calls them.

They take the user from the server-side login (a request context with a logged-in
user here), never from their inputs: a double submit returns the same event, bad
input writes nothing, and a role that may not report is refused on the server.
"""
from __future__ import annotations

import base64

import pytest
from flask_login import login_user
from sqlalchemy import text

from tests.event_support import png, remove_events

TAG = "[ui-callback-test]"


@pytest.fixture(scope="module")
def app(pg, demo_db):
    from map_app.app import create_app

    return create_app(pg.app_url)


@pytest.fixture(scope="module", autouse=True)
def _cleanup(owner_engine, demo_db):
    yield
    remove_events(owner_engine, TAG)


@pytest.fixture
def as_user(app):
    """Run code as a logged-in demo user (the scope comes from the user row, as in production)."""
    from geodata import users
    from geodata.db import SYSTEM
    from map_app.auth import SessionUser

    database = app.server.extensions["dvmap"]
    contexts = []

    def enter(username: str):
        with database.session(SYSTEM) as s:
            user = users.find_user(s, username)
            scope = users.scope_for(s, user)
        ctx = app.server.test_request_context("/")
        ctx.push()
        contexts.append(ctx)
        login_user(SessionUser(user, scope))
        return user

    yield enter
    for ctx in reversed(contexts):
        ctx.pop()


def _point(app_engine, username="village"):
    from geodata.db import SYSTEM, apply_scope

    with app_engine.begin() as conn:
        apply_scope(conn, SYSTEM)
        lon, lat = conn.execute(text(
            "SELECT ST_X(ST_PointOnSurface(g.geom)), ST_Y(ST_PointOnSurface(g.geom)) FROM grid g"
            " WHERE g.valid_to IS NULL AND g.village_id = (SELECT village_id FROM app_user WHERE username = :u)"
            " ORDER BY g.code LIMIT 1"), {"u": username}).one()
    return {"lon": lon, "lat": lat, "kind": "map"}


def _submit(point, key, description, photos=None, lang="zh", subclass="0102"):
    from callbacks.events import submit_report

    return submit_report(1, point, key, "01", subclass, description, "normal", "patrol", "", "13800000000",
                         photos, lang, 0, None, None, [], True)


def _count(app_engine, sql, **params):
    from geodata.db import SYSTEM, apply_scope

    with app_engine.begin() as conn:
        apply_scope(conn, SYSTEM)
        return conn.execute(text(sql), params).scalar()


def _data_url(data: bytes, mime="image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


def _text(component) -> str:
    """All text inside a Dash component tree."""
    if component is None:
        return ""
    if isinstance(component, (str, int, float)):
        return str(component)
    if isinstance(component, (list, tuple)):
        return " ".join(_text(c) for c in component)
    parts = [_text(getattr(component, "children", None))]
    title = getattr(component, "title", None)
    if title is not None and not isinstance(title, str):
        parts.append(_text(title))
    elif isinstance(title, str):
        parts.append(title)
    return " ".join(parts)


def test_a_double_submit_returns_the_same_event(as_user, app_engine):
    as_user("village")
    point, desc = _point(app_engine), f"重复提交 {TAG}"
    first = _submit(point, "ui-test-key-1", desc, [_data_url(png())])
    second = _submit(point, "ui-test-key-1", desc, [_data_url(png())])
    assert "已上报" in _text(first[0]) and "该上报已提交过" in _text(second[0])
    ids = [int(t.split("#")[1].split()[0]) for t in (_text(first[0]), _text(second[0]))]
    assert ids[0] == ids[1]
    assert _count(app_engine, "SELECT count(*) FROM event WHERE description = :d", d=desc) == 1
    assert _count(app_engine, "SELECT count(*) FROM event_photo WHERE event_id = :e", e=ids[0]) == 1
    # The form is hidden and the submit button disabled after success; the panel opened.
    assert first[1] == {"display": "none"} and first[2] is True
    assert f"#{ids[0]}" in _text(first[3])


def test_bad_input_gives_the_service_message_and_writes_nothing(as_user, app_engine):
    as_user("village")
    point, desc = _point(app_engine), f"坏照片 {TAG}"
    before = _count(app_engine, "SELECT count(*) FROM event")
    out = _submit(point, "ui-test-key-2", desc, [_data_url(b"GIF89a not really", "image/gif")])
    assert "不是 JPEG、PNG 或 WebP 图片" in _text(out[0])
    out_en = _submit(point, "ui-test-key-2", desc, [_data_url(b"%PDF-1.4")], lang="en")
    assert "is not a JPEG, PNG or WebP image" in _text(out_en[0])
    missing = _submit(point, "ui-test-key-2", "", None)
    assert "请填写事件描述" in _text(missing[0])
    unknown = _submit(point, "ui-test-key-2", desc, None, subclass="9999")
    assert "事件类别不存在" in _text(unknown[0])
    garbled = _submit(point, "ui-test-key-2", desc, ["data:image/png;base64,@@@"])
    assert "无法读取" in _text(garbled[0])
    assert _count(app_engine, "SELECT count(*) FROM event") == before
    assert _count(app_engine, "SELECT count(*) FROM event_request WHERE client_key = 'ui-test-key-2'") == 0


def test_outside_the_officials_village_is_refused(as_user, app_engine):
    as_user("village")
    other = _point(app_engine, "village2")
    out = _submit(other, "ui-test-key-3", f"别村 {TAG}")
    assert "不在您可以上报的村范围内" in _text(out[0])
    from callbacks.events import offer_report

    bar, marker = offer_report(other, "zh")
    assert "不在您可以上报的村范围内" in _text(bar) and "上报事件" not in _text(bar)


def test_a_read_only_role_is_refused_on_the_server(as_user, app_engine):
    from callbacks.events import offer_report, open_report_form

    as_user("planner")
    point = _point(app_engine)
    assert offer_report(point, "zh") == ([], [])  # no button at all
    assert open_report_form(1, point, "zh")[0] is not True
    out = _submit(point, "ui-test-key-4", f"规划人员 {TAG}")
    assert "无权上报" in _text(out[0])
    assert _count(app_engine, "SELECT count(*) FROM event WHERE description LIKE :d", d="规划人员%") == 0


def test_the_offer_names_the_place_and_the_form_gets_a_fresh_key(as_user, app_engine):
    from callbacks.events import offer_report, open_report_form

    as_user("worker")
    point = _point(app_engine)
    bar, marker = offer_report(point, "zh")
    assert "上报事件" in _text(bar) and len(marker) == 1
    first, second = open_report_form(1, point, "zh"), open_report_form(2, point, "zh")
    assert first[0] is True and first[1] != second[1] and first[1].startswith("ui-")
    assert first[10] == "patrol"  # a grid worker reports from patrol by default
