"""Users, passwords (argon2id), login throttling, session epochs, and each role's scope.

The scope of a request is derived here from the user's row on the server — never
from anything the browser sends. ``session_epoch`` ends sessions on the server:
the login stores it in the (signed, client-held) session, every request compares
it with the row, and logout, a password change, disabling the user or changing
its role or unit bump it — every session of the user ends.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import text
from sqlalchemy.orm import Session

from geodata import audit
from geodata.db import Scope
from geodata.login_throttle import PER_ACCOUNT_ADDRESS, LoginThrottle
from geodata.i18n import BilingualError

USER_ROLES: tuple[str, ...] = ("county_leader", "town_official", "village_official", "grid_manager",
                               "grid_worker", "planner", "admin")
ROLE_LABELS = {
    "county_leader": ("县领导", "County leader"),
    "town_official": ("乡镇干部", "Town official"),
    "village_official": ("村干部", "Village official"),
    "grid_manager": ("网格管理员", "Grid manager"),
    "grid_worker": ("网格员", "Grid worker"),
    "planner": ("规划/决策人员", "Planner"),
    "admin": ("系统管理员", "Administrator"),
}
#: Roles that see personal data (reporter phones, residents' details) unmasked.
PERSONAL_DATA_ROLES = frozenset({"village_official", "town_official", "grid_worker", "grid_manager", "admin"})

#: Wrong passwords one address may try at one account before it is refused (per window).
MAX_FAILURES = PER_ACCOUNT_ADDRESS.amount
MIN_PASSWORD = 8

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters


class AuthError(BilingualError):
    """Login or user-management failure, worded for the person who sees it."""

    code = "auth_error"


@dataclass(frozen=True)
class User:
    id: int
    username: str
    display_name: str
    role: str
    town_id: int | None
    village_id: int | None
    person_id: int | None
    active: bool
    is_demo: bool
    session_epoch: int = 0


_COLUMNS = "id, username, display_name, role, town_id, village_id, person_id, active, is_demo, session_epoch"


def hash_password(password: str) -> str:
    """Return an argon2id hash of ``password`` (refusing ones that are too short)."""
    if len(password or "") < MIN_PASSWORD:
        raise AuthError(f"密码至少 {MIN_PASSWORD} 位", f"Password must have at least {MIN_PASSWORD} characters")
    return _hasher.hash(password)


def _row_to_user(row) -> User:
    return User(**dict(row._mapping))


def get_user(session: Session, user_id: int) -> User | None:
    """The active user with ``user_id``, or None."""
    row = session.execute(text(f"SELECT {_COLUMNS} FROM app_user WHERE id = :id AND active"), {"id": user_id}).first()
    return _row_to_user(row) if row else None


def find_user(session: Session, username: str) -> User | None:
    """The user named ``username`` (case-insensitive), active or not."""
    row = session.execute(
        text(f"SELECT {_COLUMNS} FROM app_user WHERE lower(username) = lower(:u)"), {"u": username}
    ).first()
    return _row_to_user(row) if row else None


def list_users(session: Session) -> list[User]:
    """All users, by role then name."""
    rows = session.execute(text(f"SELECT {_COLUMNS} FROM app_user ORDER BY role, username"))
    return [_row_to_user(r) for r in rows]


def unit_choices(session: Session) -> dict[str, list[tuple[int, str, str]]]:
    """Villages and towns a user can be tied to, as ``(id, code, name)``, for the admin page.

    Parameters
    ----------
    session : Session
        A session with the system scope (every unit of the county).

    Returns
    -------
    dict
        ``{"villages": [...], "towns": [...]}`` ordered by code.
    """
    villages = session.execute(text(
        "SELECT v.id, v.code, v.name || ' · ' || t.name FROM village v JOIN town t ON t.id = v.town_id ORDER BY v.code"))
    towns = session.execute(text("SELECT id, code, name FROM town ORDER BY code"))
    return {"villages": [tuple(r) for r in villages], "towns": [tuple(r) for r in towns]}


def _resolve_unit(session: Session, role: str, town_code: str | None, village_code: str | None,
                  person_id: int | None) -> dict:
    town_id = village_id = None
    if town_code:
        town_id = session.execute(text("SELECT id FROM town WHERE code = :c"), {"c": town_code}).scalar()
        if town_id is None:
            raise AuthError(f"乡镇代码不存在:{town_code}", f"No town with code {town_code}")
    if village_code:
        village_id = session.execute(text("SELECT id FROM village WHERE code = :c"), {"c": village_code}).scalar()
        if village_id is None:
            raise AuthError(f"村代码不存在:{village_code}", f"No village with code {village_code}")
    if role == "village_official" and village_id is None:
        raise AuthError("村干部须指定所属村(--village 代码)", "A village official needs --village CODE")
    if role == "town_official" and town_id is None:
        raise AuthError("乡镇干部须指定所属乡镇(--town 代码)", "A town official needs --town CODE")
    if role == "grid_worker" and person_id is None:
        raise AuthError("网格员须关联人员(--person 编号)", "A grid worker needs --person ID")
    return {"town_id": town_id, "village_id": village_id, "person_id": person_id}


def create_user(session: Session, username: str, password: str, role: str, *, display_name: str | None = None,
                town_code: str | None = None, village_code: str | None = None, person_id: int | None = None,
                is_demo: bool = False, actor: str = "system") -> User:
    """Create a user.

    Parameters
    ----------
    session : Session
        A session whose scope can see the village/town named (the CLI uses the county scope).
    username, password, role : str
        ``role`` is one of :data:`USER_ROLES`.
    town_code, village_code : str, optional
        12-digit codes tying town and village officials to their unit.
    person_id : int, optional
        For grid workers: the ``person`` whose grids they handle.
    """
    if role not in USER_ROLES:
        raise AuthError(f"未知角色:{role}", f"Unknown role: {role}")
    if find_user(session, username):
        raise AuthError(f"用户名已存在:{username}", f"Username already exists: {username}")
    unit = _resolve_unit(session, role, town_code, village_code, person_id)
    row = session.execute(
        text(
            f"""INSERT INTO app_user (username, display_name, password_hash, role, town_id, village_id,
                                     person_id, is_demo)
                VALUES (:u, :d, :h, :r, :town_id, :village_id, :person_id, :demo) RETURNING {_COLUMNS}"""
        ),
        {"u": username, "d": display_name or username, "h": hash_password(password), "r": role,
         "demo": is_demo, **unit},
    ).first()
    audit.record(session, "user.create", target=username, detail={"role": role}, username=actor)
    return _row_to_user(row)


def set_role(session: Session, username: str, role: str, *, town_code: str | None = None,
             village_code: str | None = None, person_id: int | None = None, actor: str = "system") -> User:
    """Change a user's role (and the unit it is tied to); the user's open sessions end."""
    user = find_user(session, username)
    if user is None:
        raise AuthError(f"用户不存在:{username}", f"No such user: {username}")
    if role not in USER_ROLES:
        raise AuthError(f"未知角色:{role}", f"Unknown role: {role}")
    unit = _resolve_unit(session, role, town_code, village_code, person_id)
    session.execute(
        text("UPDATE app_user SET role = :r, town_id = :town_id, village_id = :village_id, person_id = :person_id,"
             " session_epoch = session_epoch + 1 WHERE id = :id"),
        {"r": role, "id": user.id, **unit},
    )
    audit.record(session, "user.set_role", target=username, detail={"from": user.role, "to": role}, username=actor)
    return find_user(session, username)


def set_active(session: Session, username: str, active: bool, *, actor: str = "system") -> None:
    """Disable (or re-enable) a user; a disabled user cannot log in and loses open sessions."""
    user = find_user(session, username)
    if user is None:
        raise AuthError(f"用户不存在:{username}", f"No such user: {username}")
    session.execute(text("UPDATE app_user SET active = :a, session_epoch = session_epoch + 1 WHERE id = :id"),
                    {"a": active, "id": user.id})
    audit.record(session, "user.enable" if active else "user.disable", target=username, username=actor)


def set_password(session: Session, username: str, password: str, *, actor: str = "system") -> None:
    """Set a new password and end the user's open sessions.

    A demo account whose password changed is no longer a demo account.
    """
    user = find_user(session, username)
    if user is None:
        raise AuthError(f"用户不存在:{username}", f"No such user: {username}")
    session.execute(
        text("UPDATE app_user SET password_hash = :h, is_demo = false, failed_logins = 0, locked_until = NULL,"
             " session_epoch = session_epoch + 1 WHERE id = :id"),
        {"h": hash_password(password), "id": user.id},
    )
    audit.record(session, "user.set_password", target=username, username=actor)


def end_sessions(session: Session, user_id: int) -> int:
    """End every open session of the user (logout); returns the new epoch."""
    return session.execute(
        text("UPDATE app_user SET session_epoch = session_epoch + 1 WHERE id = :id RETURNING session_epoch"),
        {"id": user_id},
    ).scalar_one()


def session_is_current(user: User, epoch: object) -> bool:
    """True when a session that stored ``epoch`` at login has not been ended since."""
    return isinstance(epoch, int) and not isinstance(epoch, bool) and epoch == user.session_epoch


def check_password(session: Session, user_id: int, password: str) -> bool:
    """True when ``password`` is the active user's current one (for changing it)."""
    stored = session.execute(text("SELECT password_hash FROM app_user WHERE id = :id AND active"),
                             {"id": user_id}).scalar()
    try:
        return stored is not None and _hasher.verify(stored, password or "")
    except (VerificationError, InvalidHashError):
        return False


#: One answer for every refused login — unknown user, wrong password, throttled or
#: disabled — so the answer never tells which accounts exist or are being attacked.
_BAD_LOGIN = ("用户名或密码错误，或尝试过于频繁，请稍后再试",
              "Wrong username or password, or too many attempts; try again later")


def authenticate(session: Session, username: str, password: str, *, ip: str | None = None,
                 production: bool = False, now: datetime | None = None, trusted_device: bool = False) -> User:
    """Check a login, throttled by address, by (account, address) and by account.

    Every failure is audited and answered with the same message; the limits are
    those of :mod:`geodata.login_throttle` (no account is ever hard-locked). The
    caller commits the session on failure too, so counts and audit rows stay.

    Parameters
    ----------
    ip : str, optional
        The client's address.
    trusted_device : bool
        The browser proved (signed device cookie) that it signed in to this
        account before: the account-wide limit does not apply to it.

    Raises
    ------
    AuthError
        Refused: always the same message, except a demo account in production
        mode (told only to whoever knows its password).
    """
    now = now or datetime.now(timezone.utc)
    throttle = LoginThrottle(session)
    limit = throttle.refused(username, ip, trusted_device=trusted_device)
    if limit is not None:
        # Refused before the password is checked: no hashing work for a flood, no guess counted.
        audit.record(session, "login.failed", target=username, detail={"reason": "throttled", "limit": limit},
                     ip=ip, username=username)
        raise AuthError(*_BAD_LOGIN)
    row = session.execute(
        text("SELECT id, password_hash, active, failed_logins, is_demo FROM app_user"
             " WHERE lower(username) = lower(:u) FOR UPDATE"),
        {"u": username or ""},
    ).first()
    if row is None:
        # Spend the same time as a real check so timing does not reveal which names exist.
        try:
            _hasher.verify(_DUMMY_HASH, password or "")
        except (VerificationError, InvalidHashError):
            pass
        throttle.failed(username, ip)
        audit.record(session, "login.failed", target=username, detail={"reason": "unknown user"}, ip=ip,
                     username=username)
        raise AuthError(*_BAD_LOGIN)
    try:
        _hasher.verify(row.password_hash, password or "")
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        throttle.failed(username, ip)
        # failed_logins is a running count for the administrator; nothing locks on it.
        session.execute(text("UPDATE app_user SET failed_logins = failed_logins + 1 WHERE id = :id"),
                        {"id": row.id})
        audit.record(session, "login.failed", target=username, detail={"reason": "bad password"}, ip=ip,
                     user_id=row.id, username=username)
        raise AuthError(*_BAD_LOGIN)
    if not row.active:
        throttle.failed(username, ip)
        audit.record(session, "login.failed", target=username, detail={"reason": "disabled"}, ip=ip,
                     user_id=row.id, username=username)
        raise AuthError(*_BAD_LOGIN)
    if production and row.is_demo:
        audit.record(session, "login.failed", target=username, detail={"reason": "demo account in production"},
                     ip=ip, user_id=row.id, username=username)
        raise AuthError("生产模式下不能使用演示账户,请先修改密码(dvmap users set-password)",
                        "Demo accounts are refused in production mode: change the password first")
    throttle.succeeded(username, ip)
    session.execute(
        text("UPDATE app_user SET failed_logins = 0, locked_until = NULL, last_login_at = :now WHERE id = :id"),
        {"now": now, "id": row.id},
    )
    audit.record(session, "login", target=username, ip=ip, user_id=row.id, username=username)
    return get_user(session, row.id)


_DUMMY_HASH = _hasher.hash("not-a-real-password")


def scope_for(session: Session, user: User) -> Scope:
    """The scope a user's requests run with.

    ``session`` must see the county (system scope): this is trusted server code that
    reads which villages a town or a grid worker's grids belong to.
    """
    role = user.role
    if role in ("county_leader", "planner", "admin", "grid_manager") and user.village_id is None \
            and user.town_id is None:
        return Scope(None, role, user.id)
    if role == "village_official" or (user.village_id is not None and role != "grid_worker"):
        return Scope(frozenset({user.village_id}), role, user.id)
    if role in ("town_official", "grid_manager") or user.town_id is not None:
        ids = session.execute(text("SELECT id FROM village WHERE town_id = :t"), {"t": user.town_id}).scalars()
        return Scope(frozenset(ids), role, user.id)
    if role == "grid_worker":
        rows = session.execute(
            text("SELECT village_id, uid::text FROM grid WHERE worker_id = :p AND valid_to IS NULL"),
            {"p": user.person_id},
        ).all()
        return Scope(frozenset(r[0] for r in rows), role, user.id, frozenset(r[1] for r in rows))
    return Scope(frozenset(), role, user.id)  # unknown: nothing


def mask_phone(phone: str | None, role: str) -> str | None:
    """Return ``phone`` for roles that need it, otherwise masked like 138****5678."""
    if phone is None or role in PERSONAL_DATA_ROLES:
        return phone
    digits = str(phone)
    return digits[:3] + "****" + digits[-4:] if len(digits) >= 7 else "****"
