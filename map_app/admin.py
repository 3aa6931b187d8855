"""Administrator pages: users (list, add, change role and unit, disable, reset password) and the audit log.

Every action redirects to the list with a confirmation of what was done.

Disabling a user and resetting a password end that user's open sessions
(``session_epoch``, geodata/users.py).
"""
from __future__ import annotations

import html

from flask import Blueprint, abort, current_app, redirect, request, url_for
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
form.inline{{display:inline}} form.unit select,form.unit input{{margin-right:4px}} fieldset{{margin:16px 0;border:1px solid #e5e7eb;border-radius:8px}}
a{{color:#12355b}}</style></head><body>
<p><a href="/">← 返回地图 / Back to the map</a></p>
<h1>用户管理 / Users</h1>{message}
<table><thead><tr><th>用户名 Username</th><th>姓名 Name</th><th>角色与范围 Role and unit</th><th>状态 Status</th><th></th></tr></thead>
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
<datalist id="village-codes">{village_options}</datalist><datalist id="town-codes">{town_options}</datalist>
</body></html>"""

#: What the page confirms after a redirect (``?done=…&user=…``): an action is never silent.
DONE = {
    "added": ("已添加用户 {u}", "User {u} added"),
    "updated": ("已更新 {u} 的状态(其登录已全部退出)", "{u}'s status updated (signed out everywhere)"),
    "role": ("已修改 {u} 的角色与范围(其登录已全部退出)", "{u}'s role and unit changed (signed out everywhere)"),
    "reset": ("已重置 {u} 的密码(其登录已全部退出)", "{u}'s password reset (signed out everywhere)"),
}


def _require_admin():
    if not current_user.is_authenticated or current_user.role != "admin":
        abort(403)


def _unit_form(u, token: str, villages: dict, towns: dict) -> str:
    """A user's role and unit as an editable row: change and save in place."""
    esc = html.escape
    options = "".join(f'<option value="{r}"{" selected" if r == u.role else ""}>{esc(users.ROLE_LABELS[r][0])} {r}</option>'
                      for r in users.USER_ROLES)
    village, village_name = villages.get(u.village_id, ("", ""))
    town, town_name = towns.get(u.town_id, ("", ""))
    return (
        f'<form class="inline unit" method="post" action="/admin/users"><input type="hidden" name="csrf" value="{token}">'
        f'<input type="hidden" name="op" value="role"><input type="hidden" name="username" value="{esc(u.username)}">'
        f'<select name="role" aria-label="角色 role">{options}</select>'
        f'<input name="village_code" list="village-codes" value="{esc(village)}" placeholder="村代码 village" size="13"'
        f' title="{esc(village_name)}">'
        f'<input name="town_code" list="town-codes" value="{esc(town)}" placeholder="乡镇代码 town" size="10"'
        f' title="{esc(town_name)}">'
        f'<input name="person_id" value="{u.person_id or ""}" placeholder="人员 person" size="6">'
        f"<button>保存 Save</button></form>"
        + (f" <small>{esc(village_name or town_name)}</small>" if (village_name or town_name) else "")
    )


def _toggle_form(u, token: str) -> str:
    esc = html.escape
    toggle = "disable" if u.active else "enable"
    return (f'<form class="inline" method="post" action="/admin/users"><input type="hidden" name="csrf" value="{token}">'
            f'<input type="hidden" name="op" value="{toggle}"><input type="hidden" name="username" value="{esc(u.username)}">'
            f"<button>{'停用 Disable' if u.active else '启用 Enable'}</button></form>")


def _render(message: str = "", ok: bool = True):
    database = current_app.extensions["dvmap"]
    with database.session(SYSTEM) as s:
        all_users = users.list_users(s)
        log = audit.recent(s, 50)
        s_units = users.unit_choices(s)
    esc = html.escape
    token = csrf_token()
    role_options = "".join(f'<option value="{r}">{esc(users.ROLE_LABELS[r][0])} {r}</option>' for r in users.USER_ROLES)
    villages = {i: (c, n) for i, c, n in s_units["villages"]}
    towns = {i: (c, n) for i, c, n in s_units["towns"]}
    rows = []
    for u in all_users:
        rows.append(
            f"<tr><td>{esc(u.username)}</td><td>{esc(u.display_name)}</td><td>{_unit_form(u, token, villages, towns)}</td>"
            f"<td>{'启用 active' if u.active else '停用 disabled'}{' · demo' if u.is_demo else ''}</td>"
            f"<td>{_toggle_form(u, token)}</td></tr>"
        )
    audit_rows = "".join(
        f"<tr><td>{esc(fmt_local(a['at'], '%Y-%m-%d %H:%M:%S'))}</td><td>{esc(a['username'] or '')}</td>"
        f"<td>{esc(a['action'])}</td>"
        f"<td>{esc(a['target'] or '')}</td><td>{esc(a['ip'] or '')}</td></tr>" for a in log
    )
    msg = f'<div class="msg {"ok" if ok else "err"}" role="status">{esc(message)}</div>' if message else ""
    village_options = "".join(f'<option value="{esc(c)}">{esc(n)}</option>' for _, c, n in s_units["villages"])
    town_options = "".join(f'<option value="{esc(c)}">{esc(n)}</option>' for _, c, n in s_units["towns"])
    body = PAGE.format(message=msg, rows="".join(rows), csrf=token, role_options=role_options, audit_rows=audit_rows,
                       village_options=village_options, town_options=town_options)
    return body, 200 if ok else 400, {"Content-Type": "text/html; charset=utf-8"}


@blueprint.get("/users")
def user_list():
    _require_admin()
    done = DONE.get(request.args.get("done", ""))
    who = request.args.get("user", "")[:64]
    return _render(f"{done[0].format(u=who)} / {done[1].format(u=who)}" if done else "")


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
                message = "added"
            elif op in ("disable", "enable"):
                users.set_active(s, form.get("username", ""), op == "enable", actor=actor)
                message = "updated"
            elif op == "password":
                users.set_password(s, form.get("username", "").strip(), form.get("password", ""), actor=actor)
                message = "reset"
            elif op == "role":
                person = form.get("person_id", "").strip() or None
                users.set_role(s, form.get("username", "").strip(), form.get("role", ""),
                               town_code=form.get("town_code", "").strip() or None,
                               village_code=form.get("village_code", "").strip() or None,
                               person_id=int(person) if person else None, actor=actor)
                message = "role"
            else:
                abort(400)
    except users.AuthError as exc:
        return _render(f"{exc.message_zh} / {exc.message_en}", ok=False)
    except ValueError:
        return _render("人员编号须为数字 / person id must be a number", ok=False)
    except DataError:  # a NUL byte or a number PostgreSQL cannot hold: nothing was written
        return _render("输入含有无效字符或超出范围的数值 / the form contains an invalid character or number", ok=False)
    # Post/redirect/get, with what was done named on the page that follows.
    return redirect(url_for("admin.user_list", done=message, user=form.get("username", "").strip()[:64]))
