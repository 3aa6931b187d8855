"""/admin/users through the real app: role and unit change in place, every action confirmed (issue 18)."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import text

from etl.demo_accounts import demo_password

PW = "t18-admin-page-pw"


@pytest.fixture(scope="module")
def app(pg, demo_db):
    from map_app.app import create_app

    return create_app(pg.app_url)


def _client(app, ip):
    c = app.server.test_client()
    c.environ_base["REMOTE_ADDR"] = ip
    return c


def _csrf(client, path):
    return re.search(r'name="csrf" value="([^"]+)"', client.get(path).get_data(as_text=True)).group(1)


def _login(client, username, password):
    r = client.post("/login", data={"csrf": _csrf(client, "/login"), "username": username, "password": password,
                                    "next": "/"})
    assert r.status_code == 302, r.get_data(as_text=True)[:300]


@pytest.fixture
def victim(owner_engine):
    from geodata import users
    from geodata.db import SYSTEM, make_sessionmaker, scoped

    name = "t18-admin-victim"
    with scoped(make_sessionmaker(owner_engine), SYSTEM) as s, s.begin():
        if users.find_user(s, name) is None:
            users.create_user(s, name, PW, "planner", display_name="被改角色的人")
    yield name
    with owner_engine.begin() as conn:
        conn.execute(text("DELETE FROM app_user WHERE username = :u"), {"u": name})


def _row(engine, name):
    from geodata.db import SYSTEM, apply_scope

    with engine.begin() as conn:
        apply_scope(conn, SYSTEM)
        return conn.execute(text(
            "SELECT u.role, v.code AS village, u.session_epoch FROM app_user u LEFT JOIN village v ON v.id = u.village_id"
            " WHERE u.username = :u"), {"u": name}).mappings().one()


def test_admin_changes_role_and_village_and_is_told(app, owner_engine, victim):
    from geodata.db import SYSTEM, apply_scope

    with owner_engine.begin() as conn:
        apply_scope(conn, SYSTEM)
        village = conn.execute(text("SELECT code, name FROM village ORDER BY code DESC LIMIT 1")).mappings().one()
    other = _client(app, "10.18.0.9")
    _login(other, victim, PW)
    assert other.get("/_dash-layout").status_code == 200
    before = _row(owner_engine, victim)

    admin = _client(app, "10.18.0.1")
    _login(admin, "admin", demo_password("admin"))
    page = admin.get("/admin/users").get_data(as_text=True)
    assert f'name="username" value="{victim}"' in page and 'value="role"' in page  # an edit form per row
    r = admin.post("/admin/users", data={"csrf": _csrf(admin, "/admin/users"), "op": "role", "username": victim,
                                         "role": "village_official", "village_code": village["code"]})
    assert r.status_code == 302
    shown = admin.get(r.headers["Location"]).get_data(as_text=True)
    assert f"已修改 {victim} 的角色与范围" in shown and "role and unit changed" in shown
    assert village["name"] in shown  # the row names its village
    after = _row(owner_engine, victim)
    assert (after["role"], after["village"]) == ("village_official", village["code"])
    assert after["session_epoch"] > before["session_epoch"]
    assert other.get("/_dash-layout").status_code == 401  # the old cookie is over
    with owner_engine.begin() as conn:
        audited = conn.execute(text("SELECT count(*) FROM audit_log WHERE action = 'user.set_role' AND target = :u"),
                               {"u": victim}).scalar()
    assert audited == 1


def test_a_bad_role_change_is_refused_in_both_languages_and_changes_nothing(app, owner_engine, victim):
    admin = _client(app, "10.18.0.2")
    _login(admin, "admin", demo_password("admin"))
    for form, zh in ((dict(role="village_official", village_code="999999999999"), "村代码不存在"),
                     (dict(role="village_official"), "村干部须指定所属村"),
                     (dict(role="no_such_role"), "未知角色"),
                     (dict(role="grid_worker", person_id="abc"), "人员编号须为数字")):
        r = admin.post("/admin/users", data={"csrf": _csrf(admin, "/admin/users"), "op": "role", "username": victim,
                                             **form})
        body = r.get_data(as_text=True)
        assert r.status_code == 400 and zh in body, (form, body[:400])
        assert _row(owner_engine, victim)["role"] == "planner"


@pytest.mark.parametrize("op,done", [("disable", "的状态"), ("password", "的密码")])
def test_every_action_is_confirmed(app, victim, op, done):
    admin = _client(app, "10.18.0.3")
    _login(admin, "admin", demo_password("admin"))
    r = admin.post("/admin/users", data={"csrf": _csrf(admin, "/admin/users"), "op": op, "username": victim,
                                         "password": "t18-new-password"}, follow_redirects=True)
    assert r.status_code == 200 and f"{victim} {done}" in r.get_data(as_text=True)
