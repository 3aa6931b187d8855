"""Login, sessions and the request guard (Flask-Login).

Every request but the login page, /healthz and the Open311 API needs a session;
Dash's JSON endpoints answer 401 without one, pages redirect to /login. The
request's scope comes from the user row loaded on the server for each request.

The session cookie is signed, not stored; it ends on the server all the same: it
carries the user's ``session_epoch`` from login, and the row's epoch is checked
on every request (logout and password changes bump it — geodata/users.py).
Logins are throttled in PostgreSQL (geodata/login_throttle.py); a browser that
signed in before carries a signed device cookie that exempts it from the
account-wide limit, so a distributed guesser cannot lock the owner out.
"""
from __future__ import annotations

import hmac
import html
import os
import secrets
import time
from urllib.parse import urlparse

from flask import Flask, abort, current_app, jsonify, redirect, request, session as flask_session
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user
from itsdangerous import BadSignature, URLSafeTimedSerializer

from geodata import audit, users
from geodata.db import SYSTEM, Database, Scope
from geodata.i18n import pick
from geodata.login_throttle import LoginThrottle, account_key

PUBLIC_PREFIXES = ("/login", "/healthz", "/open311/", "/api/sensors/",  # these two: API keys
                   "/report", "/track/", "/api/public/")  # villagers (随手拍), no account: map_app/public_report.py
FAILED_LOGIN_DELAY_S = 0.6  # slows password guessing on top of the login throttle
DEVICE_COOKIE = "dvmap_device"
DEVICE_MAX_AGE_S = 90 * 24 * 3600


def production_mode() -> bool:
    return os.environ.get("DVMAP_ENV", "").lower() == "production"


class SessionUser(UserMixin):
    """The logged-in user and the scope its requests run with."""

    def __init__(self, user: users.User, scope: Scope):
        self.user = user
        self.scope = scope
        self.id = str(user.id)

    @property
    def role(self) -> str:
        return self.user.role


def csrf_token() -> str:
    token = flask_session.get("csrf")
    if not token:
        token = flask_session["csrf"] = secrets.token_urlsafe(24)
    return token


def _check_csrf() -> None:
    sent = request.form.get("csrf", "")
    if not sent or not hmac.compare_digest(sent, flask_session.get("csrf", "")):
        abort(400, "CSRF token missing or wrong")


def current_scope() -> Scope:
    """Scope of the current request: the logged-in user's, or nothing at all."""
    if current_user and current_user.is_authenticated:
        return current_user.scope
    return Scope(frozenset(), "anonymous")


def current_role() -> str:
    return current_user.role if current_user and current_user.is_authenticated else "anonymous"


def _device_serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key, salt="dvmap-login-device")


def _trusted_device(username: str) -> bool:
    """True when this browser signed in to ``username`` before (its signed device cookie says so)."""
    raw = request.cookies.get(DEVICE_COOKIE)
    if not raw:
        return False
    try:
        data = _device_serializer().loads(raw, max_age=DEVICE_MAX_AGE_S)
    except BadSignature:
        return False
    return isinstance(data, dict) and data.get("u") == account_key(username)


def _start_session(user: users.User, scope: Scope) -> None:
    """Log ``user`` in on this browser, bound to the user's current session epoch."""
    login_user(SessionUser(user, scope))
    flask_session["epoch"] = user.session_epoch


def _safe_next(target: str | None) -> str:
    if not target:
        return "/"
    parsed = urlparse(target)
    # Only same-site relative paths: no open redirect.
    if parsed.scheme or parsed.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


def _phone_browser() -> bool:
    """True for a phone's browser (its User-Agent says Mobile/Android/iPhone)."""
    agent = request.headers.get("User-Agent", "")
    return any(word in agent for word in ("Mobile", "Android", "iPhone"))


LOGIN_PAGE = """<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{title}</title><link rel="icon" href="data:,">
<style>
body{{margin:0;min-height:100vh;display:flex;align-items:center;justify-content:center;
background:linear-gradient(160deg,#12355b,#1f5f8b);font-family:"Noto Sans CJK SC","WenQuanYi Micro Hei",system-ui,sans-serif}}
form{{background:#fff;padding:32px 36px;border-radius:10px;width:340px;box-shadow:0 10px 40px rgba(0,0,0,.3)}}
h1{{margin:0 0 4px;font-size:24px;color:#12355b}} p.sub{{margin:0 0 20px;color:#64748b;font-size:14px}}
label{{display:block;font-size:14px;color:#334155;margin:12px 0 4px}}
input[type=text],input[type=password]{{width:100%;box-sizing:border-box;padding:9px 10px;border:1px solid #cbd5e1;border-radius:6px;font-size:15px}}
button{{margin-top:20px;width:100%;padding:10px;border:0;border-radius:6px;background:#12355b;color:#fff;font-size:16px;cursor:pointer}}
.err{{background:#fef2f2;color:#991b1b;border:1px solid #fecaca;padding:8px 10px;border-radius:6px;font-size:14px}}
.lang{{float:right;font-size:13px}}
</style></head><body>
<form method="post" action="/login">
<a class="lang" href="/login?lang={other}">{other_label}</a>
<h1>{title}</h1><p class="sub">{subtitle}</p>
{error}
<input type="hidden" name="csrf" value="{csrf}"><input type="hidden" name="next" value="{next}">
<input type="hidden" name="lang" value="{lang}">
<label for="username">{user_label}</label><input id="username" name="username" type="text" autocomplete="username" required autofocus>
<label for="password">{pw_label}</label><input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">{submit}</button>
</form></body></html>"""


def _login_page(lang: str, error: str | None = None, next_url: str = "/", status: int = 200):
    body = LOGIN_PAGE.format(
        lang="en" if lang == "en" else "zh-CN",
        other="zh" if lang == "en" else "en",
        other_label="中文" if lang == "en" else "English",
        title=pick("数字乡村一张图", "Digital Village One Map", lang),
        subtitle=pick("请登录", "Please sign in", lang),
        error=f'<div class="err" role="alert">{html.escape(error)}</div>' if error else "",
        csrf=html.escape(csrf_token()),
        next=html.escape(next_url),
        user_label=pick("用户名", "Username", lang),
        pw_label=pick("密码", "Password", lang),
        submit=pick("登录", "Sign in", lang),
    )
    return body, status, {"Content-Type": "text/html; charset=utf-8"}


PASSWORD_PAGE = """<!doctype html><html lang="{lang}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1"><title>{title}</title><link rel="icon" href="data:,">
<style>body{{font-family:"Noto Sans CJK SC","WenQuanYi Micro Hei",system-ui,sans-serif;margin:24px;color:#1f2937}}
label{{display:block;margin:10px 0 4px}} .msg{{padding:8px 10px;border-radius:6px;max-width:320px}}
.ok{{background:#ecfdf5}} .err{{background:#fef2f2;color:#991b1b}}</style></head><body>
<p><a href="/">{back}</a></p><h1>{title}</h1>{message}
<form method="post" action="/account/password"><input type="hidden" name="csrf" value="{csrf}">
<input type="hidden" name="lang" value="{lang_code}">
<label for="current">{current}</label><input id="current" name="current" type="password" autocomplete="current-password" required>
<label for="new">{new}</label><input id="new" name="new" type="password" autocomplete="new-password" required>
<label for="repeat">{repeat}</label><input id="repeat" name="repeat" type="password" autocomplete="new-password" required>
<p><button type="submit">{submit}</button></p></form></body></html>"""


def _password_page(lang: str, error: str | None = None, *, done: bool = False, status: int = 200):
    if done:
        message = '<div class="msg ok" role="status">' + html.escape(
            pick("密码已修改，其他设备上的登录已退出", "Password changed; you were signed out everywhere else", lang)) + "</div>"
    else:
        message = f'<div class="msg err" role="alert">{html.escape(error)}</div>' if error else ""
    body = PASSWORD_PAGE.format(
        lang="en" if lang == "en" else "zh-CN", lang_code=lang, title=pick("修改密码", "Change password", lang),
        back=pick("← 返回地图", "← Back to the map", lang), message=message, csrf=html.escape(csrf_token()),
        current=pick("当前密码", "Current password", lang), new=pick("新密码(至少 8 位)", "New password (≥ 8)", lang),
        repeat=pick("再次输入新密码", "New password again", lang), submit=pick("修改", "Change", lang),
    )
    return body, status, {"Content-Type": "text/html; charset=utf-8"}


def init_auth(server: Flask, database: Database) -> None:
    """Install Flask-Login, the login/logout routes and the guard on ``server``."""
    manager = LoginManager()
    manager.session_protection = "strong"
    manager.init_app(server)

    @manager.user_loader
    def load_user(user_id: str):
        try:
            uid = int(user_id)
        except (TypeError, ValueError):
            return None
        # Trusted server code reads the user's row and derives the scope.
        with database.session(SYSTEM) as s:
            user = users.get_user(s, uid)
            # A session from before a logout, password change, disable or role change is over.
            if user is None or not users.session_is_current(user, flask_session.get("epoch")):
                return None
            scope = users.scope_for(s, user)
        return SessionUser(user, scope)

    database.scope_provider = current_scope

    @server.before_request
    def require_login():
        path = request.path
        if path.startswith(PUBLIC_PREFIXES):
            return None
        if current_user.is_authenticated:
            return None
        if request.blueprint == "ogc":
            return None  # GIS clients send an API key: the OGC API checks key or session itself (map_app/ogc.py)
        wants_html = request.method == "GET" and not path.startswith(("/_dash", "/ogc", "/api")) \
            and "text/html" in request.headers.get("Accept", "")
        if wants_html:
            return redirect("/login?next=" + _safe_next(request.full_path.rstrip("?")))
        from map_app.errors import HttpError, error_response

        return error_response(HttpError(401))

    @server.route("/login", methods=["GET", "POST"])
    def login():
        lang = "en" if (request.values.get("lang") == "en") else "zh"
        next_url = _safe_next(request.values.get("next"))
        if request.method == "GET":
            return _login_page(lang, next_url=next_url)
        _check_csrf()
        username = request.form.get("username", "").strip()
        password = request.form.get("password", "")
        with database.session(SYSTEM) as s:
            try:
                user = users.authenticate(s, username, password, ip=request.remote_addr,
                                          production=production_mode(), trusted_device=_trusted_device(username))
            except users.AuthError as exc:
                s.commit()  # the throttle counts and the audit row must stay
                time.sleep(FAILED_LOGIN_DELAY_S)
                return _login_page(lang, exc.message(lang), next_url, status=401)
            s.commit()
        flask_session.clear()  # new session id material after login (no fixation)
        with database.session(SYSTEM) as s:
            scope = users.scope_for(s, user)
        _start_session(user, scope)
        if next_url == "/" and user.role == "grid_worker" and _phone_browser():
            next_url = "/field"  # 网格通: a grid worker on a phone lands on the phone app (map_app/field_page.py)
        response = redirect(next_url)
        response.set_cookie(DEVICE_COOKIE, _device_serializer().dumps({"u": account_key(user.username)}),
                            max_age=DEVICE_MAX_AGE_S, path="/login", httponly=True, samesite="Lax",
                            secure=server.config.get("SESSION_COOKIE_SECURE", False))
        return response

    @server.post("/logout")
    def logout():
        _check_csrf()
        if current_user.is_authenticated:
            with database.session(SYSTEM) as s, s.begin():
                # Ends this user's sessions everywhere, so a copy of this cookie is worthless too.
                users.end_sessions(s, current_user.user.id)
                audit.record(s, "logout", target=current_user.user.username, user_id=current_user.user.id,
                             username=current_user.user.username, ip=request.remote_addr)
        logout_user()
        flask_session.clear()
        return redirect("/login")

    @server.route("/account/password", methods=["GET", "POST"])
    def change_password():
        # Self-service: ends the user's other sessions; this browser stays signed in.
        lang = "en" if request.values.get("lang") == "en" else "zh"
        if request.method == "GET":
            return _password_page(lang)
        _check_csrf()
        me = current_user.user
        ip = request.remote_addr
        with database.session(SYSTEM) as s:
            throttle = LoginThrottle(s)  # the current password is a guess like any login
            wrong = throttle.refused(me.username, ip, trusted_device=True) is not None \
                or not users.check_password(s, me.id, request.form.get("current", ""))
            if wrong:
                throttle.failed(me.username, ip)
                audit.record(s, "password.change_failed", target=me.username, user_id=me.id,
                             username=me.username, ip=ip)
                s.commit()
                return _password_page(lang, pick("当前密码错误，或尝试过于频繁", "Wrong current password, or too many "
                                                  "attempts", lang), status=400)
            new = request.form.get("new", "")
            if new != request.form.get("repeat", ""):
                return _password_page(lang, pick("两次输入的新密码不一致", "The new passwords differ", lang), status=400)
            try:
                users.set_password(s, me.username, new, actor=me.username)
            except users.AuthError as exc:
                return _password_page(lang, exc.message(lang), status=400)
            s.commit()
            user = users.get_user(s, me.id)
            scope = users.scope_for(s, user)
        _start_session(user, scope)
        return _password_page(lang, done=True)

    @server.after_request
    def security_headers(response):
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "SAMEORIGIN")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response

