"""Login, lockout, the request guard, demo accounts, audit — through the real Flask app."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import text

from etl.demo_accounts import demo_password


@pytest.fixture(scope="module")
def app(pg, demo_db):
    from map_app.app import create_app

    return create_app(pg.app_url)


def _csrf(client, path="/login"):
    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


def login(client, username, password=None):
    token = _csrf(client)
    return client.post("/login", data={"csrf": token, "username": username,
                                       "password": password or demo_password(username), "next": "/"})


def test_requests_without_a_session_get_only_401_or_a_redirect(app):
    c = app.server.test_client()
    r = c.get("/", headers={"Accept": "text/html"})
    assert r.status_code == 302 and r.headers["Location"].startswith("/login")
    for path in ("/_dash-layout", "/_dash-dependencies", "/admin/users", "/assets/dvmap.js"):
        assert c.get(path).status_code in (401, 302), path
    r = c.post("/_dash-update-component", json={"output": "details.children", "outputs": {}, "inputs": []})
    assert r.status_code == 401
    assert c.get("/healthz").status_code == 200
    assert c.get("/login").status_code == 200


def test_login_logout_and_audit(app, owner_engine):
    c = app.server.test_client()
    r = login(c, "leader")
    assert r.status_code == 302 and r.headers["Location"] == "/"
    assert c.get("/_dash-layout").status_code == 200
    cookie = r.headers.get("Set-Cookie", "")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    token = _csrf(c, "/login")
    assert c.post("/logout", data={"csrf": token}).status_code == 302
    assert c.get("/_dash-layout").status_code == 401
    with owner_engine.connect() as conn:
        actions = [r[0] for r in conn.execute(text(
            "SELECT action FROM audit_log WHERE username = 'leader' ORDER BY id DESC LIMIT 2"))]
    assert actions == ["logout", "login"]


def test_logout_needs_the_csrf_token(app):
    c = app.server.test_client()
    login(c, "planner")
    assert c.post("/logout", data={}).status_code == 400
    assert c.get("/_dash-layout").status_code == 200


def test_wrong_passwords_throttle_that_address_for_the_account_and_are_audited(app, owner_engine):
    # Was: the account was locked, with a "锁定" (locked) message. Issue 14: that message told
    # which accounts exist and let anyone lock an account out from everywhere; now the
    # guessing address is refused for that account with the one generic message, and the
    # account stays open from other addresses (tests/integration/test_auth_sessions.py).
    from geodata import users

    c = app.server.test_client()
    c.environ_base["REMOTE_ADDR"] = "10.4.0.1"
    for _ in range(users.MAX_FAILURES):
        r = login(c, "village2", "wrong-password")
        assert r.status_code == 401
        assert "用户名或密码错误" in r.get_data(as_text=True)
    r = login(c, "village2")  # right password, but this address has spent its tries
    assert r.status_code == 401 and "用户名或密码错误" in r.get_data(as_text=True)
    elsewhere = app.server.test_client()
    elsewhere.environ_base["REMOTE_ADDR"] = "10.4.0.2"
    assert login(elsewhere, "village2").status_code == 302
    with owner_engine.connect() as conn:
        n = conn.execute(text(
            "SELECT count(*) FROM audit_log WHERE action = 'login.failed' AND username = 'village2'")).scalar()
        conn.execute(text("DELETE FROM login_throttle"))
        conn.commit()
    assert n == users.MAX_FAILURES + 1


def test_unknown_user_gets_the_same_message(app):
    c = app.server.test_client()
    r = login(c, "nobody-here", "whatever-123")
    assert r.status_code == 401 and "用户名或密码错误" in r.get_data(as_text=True)


def test_demo_accounts_are_refused_in_production_mode(app, monkeypatch):
    monkeypatch.setenv("DVMAP_ENV", "production")
    c = app.server.test_client()
    r = login(c, "planner")
    assert r.status_code == 401 and "演示账户" in r.get_data(as_text=True)


def test_open_redirects_are_refused(app):
    c = app.server.test_client()
    token = _csrf(c)
    r = c.post("/login", data={"csrf": token, "username": "leader", "password": demo_password("leader"),
                               "next": "https://evil.example/"})
    assert r.headers["Location"] == "/"


def test_audit_log_is_append_only(app_engine, owner_engine):
    from sqlalchemy.exc import DBAPIError

    from geodata.db import SYSTEM, apply_scope

    for engine in (app_engine, owner_engine):
        with pytest.raises(DBAPIError):
            with engine.begin() as conn:
                apply_scope(conn, SYSTEM)
                conn.execute(text("DELETE FROM audit_log"))
        with pytest.raises(DBAPIError):
            with engine.begin() as conn:
                conn.execute(text("UPDATE audit_log SET action = 'x'"))


def test_admin_page_is_for_admins_only(app):
    c = app.server.test_client()
    login(c, "planner")
    assert c.get("/admin/users").status_code == 403
    c2 = app.server.test_client()
    login(c2, "admin")
    page = c2.get("/admin/users").get_data(as_text=True)
    assert "leader" in page and "county_leader" in page


def test_scopes_by_role(app, app_engine):
    from geodata import users
    from geodata.db import SYSTEM, make_sessionmaker, scoped

    factory = make_sessionmaker(app_engine)
    with scoped(factory, SYSTEM) as s:
        scopes = {u.username: users.scope_for(s, u) for u in users.list_users(s)}
        town_villages = s.execute(text(
            "SELECT count(*) FROM village WHERE town_id = (SELECT town_id FROM app_user WHERE username='town')")).scalar()
    assert scopes["leader"].village_ids is None and scopes["planner"].village_ids is None
    assert len(scopes["village"].village_ids) == 1
    assert len(scopes["town"].village_ids) == town_villages > 1
    assert scopes["worker"].grid_uids and len(scopes["worker"].village_ids) == 1


def test_phone_numbers_are_masked_for_roles_that_do_not_need_them():
    from geodata.users import mask_phone

    assert mask_phone("13812345678", "planner") == "138****5678"
    assert mask_phone("13812345678", "county_leader") == "138****5678"
    assert mask_phone("13812345678", "village_official") == "13812345678"


def test_data_changes_are_audited_with_the_acting_user(app_engine, owner_engine, demo_db):
    from geodata import events as ev
    from geodata.db import Scope, make_sessionmaker, scoped

    with owner_engine.connect() as conn:
        uid, vid = conn.execute(text("SELECT id, village_id FROM app_user WHERE username = 'village'")).one()
    factory = make_sessionmaker(app_engine)
    with scoped(factory, Scope.villages([vid], "village_official", uid)) as s:
        x, y = s.execute(text("SELECT ST_X(label_point), ST_Y(label_point) FROM village WHERE id = :v"),
                         {"v": vid}).one()
        ref = ev.create_event(s, lon=x, lat=y, subclass="0101", description="审计测试", source="patrol",
                              actor=ev.Actor("village", "village_official", uid))
        row = s.execute(text(
            "SELECT username, action, detail FROM audit_log WHERE action = 'event.insert' ORDER BY id DESC LIMIT 1"
        )).one()
        s.rollback()
    assert row.username == "village" and row.detail["rows"] == 1 and ref.id in row.detail["ids"]
