"""Administrator pages: users (list, add, role, disable, reset password) and the audit log.

Disabling a user and resetting a password end that user's open sessions
(``session_epoch``, geodata/users.py).
"""
from __future__ import annotations

import html

from flask import Blueprint, abort, current_app, redirect, request
from flask_login import current_user
from sqlalchemy.exc import DataError

from geodata import audit, users
from geodata.clock import fmt_local
from geodata.db import SYSTEM
from map_app.auth import _check_csrf, csrf_token

blueprint = Blueprint("admin", __name__, url_prefix="/admin")

PAGE = """<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><title>用户管理 · Users</title>
<style>body{{font-family:"Noto Sans CJK SC","WenQuanYi Micro Hei",system-ui,sans-serif;margin:24px;color:#1f2937}}
table{{border-collapse:collapse;font-size:14px}}td,th{{border-bottom:1px solid #e5e7eb;padding:6px 10px;text-align:left}}
.msg{{padding:8px 10px;border-radius:6px;margin:10px 0}}.ok{{background:#ecfdf5}}.err{{background:#fef2f2;color:#991b1b}}
form.inline{{display:inline}} fieldset{{margin:16px 0;border:1px solid #e5e7eb;border-radius:8px}}
a{{color:#12355b}}</style></head><body>
<p><a href="/">← 返回地图 / Back to the map</a></p>
<h1>用户管理 / Users</h1>{message}
<table><thead><tr><th>用户名 Username</th><th>姓名 Name</th><th>角色 Role</th><th>范围 Unit</th><th>状态 Status</th><th></th></tr></thead>
<tbody>{rows}</tbody></table>
<fieldset><legend>新增用户 / Add user</legend>
<form method="post" action="/admin/users"><input type="hidden" name="csrf" value="{csrf}"><input type="hidden" name="op" value="add">
<input name="username" placeholder="用户名 username" required> <input name="display_name" placeholder="姓名 name">
<input name="password" type="password" placeholder="密码 password (≥8)" required>
<select name="role">{role_options}</select> <input name="village_code" placeholder="村代码 village code">
<input name="town_code" placeholder="乡镇代码 town code"> <input name="person_id" placeholder="人员编号 person id" size="8">
<button>添加 Add</button></form></fieldset>
<fieldset><legend>重置密码 / Reset password (该用户的登录全部退出 / signs the user out everywhere)</legend>
<form method="post" action="/admin/users"><input type="hidden" name="csrf" value="{csrf}"><input type="hidden" name="op" value="password">
<input name="username" placeholder="用户名 username" required>
<input name="password" type="password" placeholder="新密码 new password (≥8)" autocomplete="new-password" required>
<button>重置 Reset</button></form></fieldset>
<h2>审计日志 / Audit log (最近 50 条)</h2><table><tbody>{audit_rows}</tbody></table>
</body></html>"""


def _require_admin():
    if not current_user.is_authenticated or current_user.role != "admin":
        abort(403)


def _render(message: str = "", ok: bool = True):
    database = current_app.extensions["dvmap"]
    with database.session(SYSTEM) as s:
        all_users = users.list_users(s)
        log = audit.recent(s, 50)
    esc = html.escape
    token = csrf_token()
    role_options = "".join(f'<option value="{r}">{esc(users.ROLE_LABELS[r][0])} {r}</option>' for r in users.USER_ROLES)
    rows = []
    for u in all_users:
        unit = f"village {u.village_id}" if u.village_id else f"town {u.town_id}" if u.town_id else \
            f"person {u.person_id}" if u.person_id else "county"
        toggle = "disable" if u.active else "enable"
        rows.append(
            f"<tr><td>{esc(u.username)}</td><td>{esc(u.display_name)}</td><td>{esc(u.role)}</td><td>{esc(unit)}</td>"
            f"<td>{'启用 active' if u.active else '停用 disabled'}{' · demo' if u.is_demo else ''}</td>"
            f'<td><form class="inline" method="post" action="/admin/users"><input type="hidden" name="csrf" value="{token}">'
            f'<input type="hidden" name="op" value="{toggle}"><input type="hidden" name="username" value="{esc(u.username)}">'
            f"<button>{'停用 Disable' if u.active else '启用 Enable'}</button></form></td></tr>"
        )
    audit_rows = "".join(
        f"<tr><td>{esc(fmt_local(a['at'], '%Y-%m-%d %H:%M:%S'))}</td><td>{esc(a['username'] or '')}</td>"
        f"<td>{esc(a['action'])}</td>"
        f"<td>{esc(a['target'] or '')}</td><td>{esc(a['ip'] or '')}</td></tr>" for a in log
    )
    msg = f'<div class="msg {"ok" if ok else "err"}" role="status">{esc(message)}</div>' if message else ""
    body = PAGE.format(message=msg, rows="".join(rows), csrf=token, role_options=role_options, audit_rows=audit_rows)
    return body, 200 if ok else 400, {"Content-Type": "text/html; charset=utf-8"}


@blueprint.get("/users")
def user_list():
    _require_admin()
    return _render()


@blueprint.post("/users")
def user_action():
    _require_admin()
    _check_csrf()
    database = current_app.extensions["dvmap"]
    form = request.form
    op = form.get("op")
    actor = current_user.user.username
    try:
        with database.session(SYSTEM) as s, s.begin():
            if op == "add":
                person = form.get("person_id") or None
                users.create_user(
                    s, form.get("username", "").strip(), form.get("password", ""), form.get("role", ""),
                    display_name=form.get("display_name") or None, village_code=form.get("village_code") or None,
                    town_code=form.get("town_code") or None, person_id=int(person) if person else None, actor=actor,
                )
                message = "已添加 / added"
            elif op in ("disable", "enable"):
                users.set_active(s, form.get("username", ""), op == "enable", actor=actor)
                message = "已更新 / updated"
            elif op == "password":
                users.set_password(s, form.get("username", "").strip(), form.get("password", ""), actor=actor)
                message = "已重置 / reset"
            else:
                abort(400)
    except users.AuthError as exc:
        return _render(f"{exc.message_zh} / {exc.message_en}", ok=False)
    except ValueError:
        return _render("人员编号须为数字 / person id must be a number", ok=False)
    except DataError:  # a NUL byte or a number PostgreSQL cannot hold: nothing was written
        return _render("输入含有无效字符或超出范围的数值 / the form contains an invalid character or number", ok=False)
    return redirect("/admin/users") if message else _render()
