"""Sessions that end on the server, and login throttling — through the real app (create_app).

Issue 14: a session cookie copied before logout still worked after it; one address
could guess 40 times unrefused; the lockout message told which accounts exist, and
five guesses locked ``admin`` out from everywhere.
"""
from __future__ import annotations

import os
import re

import pytest
from sqlalchemy import text

from etl.demo_accounts import demo_password

PW = "t14-right-password"


@pytest.fixture(scope="module")
def app(pg, demo_db):
    from map_app.app import create_app

    return create_app(pg.app_url)


@pytest.fixture(autouse=True)
def fresh_counts(owner_engine, monkeypatch):
    """No throttle counts from other tests; no 0.6 s pause per failure (not what is tested here)."""
    import map_app.auth

    monkeypatch.setattr(map_app.auth, "FAILED_LOGIN_DELAY_S", 0)
    with owner_engine.begin() as conn:
        conn.execute(text("DELETE FROM login_throttle"))
    yield
    with owner_engine.begin() as conn:
        conn.execute(text("DELETE FROM login_throttle"))


def client(app, ip="10.14.0.1"):
    c = app.server.test_client()
    c.environ_base["REMOTE_ADDR"] = ip
    return c


def _csrf(c, path="/login"):
    return re.search(r'name="csrf" value="([^"]+)"', c.get(path).get_data(as_text=True)).group(1)


def login(c, username, password):
    return c.post("/login", data={"csrf": _csrf(c), "username": username, "password": password, "next": "/"})


def make_user(app, role="planner", **unit) -> str:
    from geodata import users
    from geodata.db import SYSTEM

    name = f"t14_{os.getpid()}_{make_user.n}"
    make_user.n += 1
    with app.server.extensions["dvmap"].session(SYSTEM) as s, s.begin():
        users.create_user(s, name, PW, role, **unit)
    return name


make_user.n = 0


def copied_session(app, c):
    """A second browser holding a copy of ``c``'s session cookie (what a thief would copy).

    Same address and user agent: Flask-Login's "strong" protection ties a session to
    them, but both are easy to share or forge (it trusts X-Forwarded-For).
    """
    name = app.server.config["SESSION_COOKIE_NAME"]
    thief = client(app, c.environ_base["REMOTE_ADDR"])
    thief.set_cookie(name, c.get_cookie(name).value)
    return thief


def throttled(owner_engine, ip) -> int:
    with owner_engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM audit_log WHERE action = 'login.failed' AND ip = :ip"
                                 " AND detail->>'reason' = 'throttled'"), {"ip": ip}).scalar()


# -- sessions end on the server ---------------------------------------------------
def _logout(app, c, victim):
    assert c.post("/logout", data={"csrf": _csrf(c)}).status_code == 302


def _self_service(app, c, victim):
    r = c.post("/account/password", data={"csrf": _csrf(c, "/account/password"), "current": PW,
                                          "new": "t14-new-password", "repeat": "t14-new-password"})
    assert r.status_code == 200 and "密码已修改" in r.get_data(as_text=True)
    assert c.get("/_dash-layout").status_code == 200  # this browser stays signed in, with the new epoch


def _admin_reset(app, c, victim):
    a = client(app, "10.14.0.2")
    assert login(a, "admin", demo_password("admin")).status_code == 302
    r = a.post("/admin/users", data={"csrf": _csrf(a, "/admin/users"), "op": "password", "username": victim,
                                     "password": "t14-reset-password"})
    assert r.status_code == 302


def _admin_disable(app, c, victim):
    a = client(app, "10.14.0.3")
    assert login(a, "admin", demo_password("admin")).status_code == 302
    assert a.post("/admin/users", data={"csrf": _csrf(a, "/admin/users"), "op": "disable",
                                        "username": victim}).status_code == 302


def _cli(*args):
    def end(app, c, victim):
        from click.testing import CliRunner

        from map_app.cli import main

        result = CliRunner().invoke(main, ["users", *[a.replace("VICTIM", victim) for a in args]],
                                    env={"DATABASE_URL": _URLS["app"], "DVMAP_OWNER_URL": _URLS["owner"]})
        assert result.exit_code == 0, result.output
    return end


_URLS: dict[str, str] = {}


@pytest.fixture(autouse=True)
def _cli_urls(pg):
    _URLS.update(app=pg.app_url, owner=pg.owner_url)


@pytest.mark.parametrize("end", [_logout, _self_service, _admin_reset, _admin_disable,
                                 _cli("set-password", "VICTIM", "--password", "t14-cli-password"),
                                 _cli("set-role", "VICTIM", "county_leader"), _cli("disable", "VICTIM")],
                         ids=["logout", "self-service-password", "admin-reset", "admin-disable", "cli-set-password",
                              "cli-set-role", "cli-disable"])
def test_a_cookie_copied_before_the_session_ended_no_longer_works(app, end):
    victim = make_user(app)
    c = client(app)
    assert login(c, victim, PW).status_code == 302
    thief = copied_session(app, c)
    assert thief.get("/_dash-layout").status_code == 200  # the copy works while the session lives
    end(app, c, victim)
    assert thief.get("/_dash-layout").status_code == 401
    r = thief.get("/", headers={"Accept": "text/html"})
    assert r.status_code == 302 and r.headers["Location"].startswith("/login")


def test_the_self_service_change_needs_the_current_password(app):
    victim = make_user(app)
    c = client(app, "10.14.0.4")
    assert login(c, victim, PW).status_code == 302
    r = c.post("/account/password", data={"csrf": _csrf(c, "/account/password"), "current": "not-it-at-all",
                                          "new": "t14-new-password", "repeat": "t14-new-password"})
    assert r.status_code == 400
    assert login(client(app, "10.14.0.5"), victim, PW).status_code == 302  # unchanged


# -- throttling -------------------------------------------------------------------
def _wrong_guesses(app, ip, names, n=40):
    c = client(app, ip)
    statuses = [login(c, names[i % len(names)], f"guess-{i:04d}").status_code for i in range(n)]
    assert set(statuses) == {401}
    return c


def test_forty_wrong_guesses_from_one_address_are_refused_after_the_limit(app, owner_engine):
    from geodata.login_throttle import PER_ADDRESS

    ip = "10.14.1.1"
    # A spray over many accounts, so only the per-address limit applies.
    names = ["leader", "planner", "town", "village"] + [f"no-such-user-{i}" for i in range(36)]
    c = _wrong_guesses(app, ip, names)
    refused = throttled(owner_engine, ip)
    print(f"\n40 wrong guesses over 40 accounts from one address: {refused} refused")
    assert refused == 40 - PER_ADDRESS.amount == 20
    # Refused means refused: now even a right password from that address is turned away...
    assert login(c, "leader", demo_password("leader")).status_code == 401
    # ...while other addresses are untouched.
    assert login(client(app, "10.14.1.2"), "leader", demo_password("leader")).status_code == 302


def test_guesses_at_one_account_from_one_address_stop_after_five(app, owner_engine):
    from geodata.users import MAX_FAILURES

    ip = "10.14.2.1"
    _wrong_guesses(app, ip, ["admin"])
    refused = throttled(owner_engine, ip)
    print(f"\n40 wrong guesses at admin from one address: {refused} refused")
    assert refused == 40 - MAX_FAILURES == 35
    with owner_engine.connect() as conn:
        audited = conn.execute(text("SELECT count(*) FROM audit_log WHERE action = 'login.failed' AND ip = :ip"),
                               {"ip": ip}).scalar()
    assert audited == 40  # every failure keeps its audit row, refused or not


def test_an_attacker_cannot_lock_admin_out(app):
    attacker = client(app, "10.14.3.66")
    for i in range(40):
        login(attacker, "admin", f"guess-{i}")
    assert login(attacker, "admin", demo_password("admin")).status_code == 401  # the attacker's tries are spent
    r = login(client(app, "10.14.3.1"), "admin", demo_password("admin"))  # the real admin, elsewhere
    assert r.status_code == 302 and r.headers["Location"] == "/"


def test_a_browser_that_signed_in_before_beats_a_distributed_guesser(app, monkeypatch):
    from limits import parse

    from geodata import login_throttle
    from geodata.login_throttle import PER_ACCOUNT_ADDRESS

    # The account-wide limit made small (50 → 10) so that spending it takes 10 hashes, not 50.
    monkeypatch.setattr(login_throttle, "PER_ACCOUNT", parse("10 per 15 minutes"))
    PER_ACCOUNT = login_throttle.PER_ACCOUNT
    victim = make_user(app, "admin")
    own = client(app, "10.14.4.1")
    assert login(own, victim, PW).status_code == 302  # gets the device cookie
    assert own.post("/logout", data={"csrf": _csrf(own)}).status_code == 302
    per_address = PER_ACCOUNT_ADDRESS.amount
    for a in range(PER_ACCOUNT.amount // per_address):  # many addresses, each under its own limit
        bot = client(app, f"10.14.5.{a + 1}")
        for i in range(per_address):
            login(bot, victim, f"guess-{a}-{i}")
    # The account-wide limit is spent: a fresh browser on a fresh address must wait for the window...
    assert login(client(app, "10.14.4.2"), victim, PW).status_code == 401
    # ...but the owner's browser, which signed in before, still gets in (from a new address too).
    own.environ_base["REMOTE_ADDR"] = "10.14.4.3"
    assert login(own, victim, PW).status_code == 302


def test_every_refusal_looks_the_same(app, owner_engine):
    from geodata import users
    from geodata.db import SYSTEM
    from geodata.users import MAX_FAILURES

    disabled = make_user(app)
    with app.server.extensions["dvmap"].session(SYSTEM) as s, s.begin():
        users.set_active(s, disabled, False)
    c = app.server.test_client()  # one browser, so the same CSRF token in every page

    def answer(ip, username, password):
        c.environ_base["REMOTE_ADDR"] = ip
        r = login(c, username, password)
        return r.status_code, r.get_data(as_text=True)

    unknown = answer("10.14.6.1", "nobody-by-this-name", "whatever-123")
    known = answer("10.14.6.2", "leader", "whatever-123")
    off = answer("10.14.6.3", disabled, PW)  # right password, disabled account
    for i in range(MAX_FAILURES):
        answer("10.14.6.4", "planner", f"guess-{i}")
    limited = answer("10.14.6.4", "planner", demo_password("planner"))  # right password, throttled
    assert throttled(owner_engine, "10.14.6.4") == 1
    assert unknown[0] == 401 and "用户名或密码错误" in unknown[1]
    assert unknown == known == off == limited
