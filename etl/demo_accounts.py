"""One demo account per role, with known passwords (refused in production mode)."""
from __future__ import annotations

from sqlalchemy import text

from geodata import users
from geodata.db import SYSTEM, make_engine, make_sessionmaker, scoped

#: username, role, display name; the password is ``dvmap-demo-<username>``.
DEMO_ACCOUNTS = (
    ("leader", "county_leader", "县领导(演示)"),
    ("town", "town_official", "乡镇干部(演示)"),
    ("village", "village_official", "村干部(演示)"),
    ("village2", "village_official", "村干部二(演示)"),
    ("gridmgr", "grid_manager", "网格管理员(演示)"),
    ("worker", "grid_worker", "网格员(演示)"),
    ("planner", "planner", "规划人员(演示)"),
    ("admin", "admin", "管理员(演示)"),
)


def demo_password(username: str) -> str:
    """The known demo password of a demo account."""
    return f"dvmap-demo-{username}"


def ensure_demo_accounts(owner_url: str) -> list[dict]:
    """Create the demo accounts that do not exist yet (idempotent).

    Parameters
    ----------
    owner_url : str
        URL of the schema owner; the demo county must be loaded.

    Returns
    -------
    list of dict
        ``username``, ``password``, ``role`` and the unit (village/town name) per account.
    """
    engine = make_engine(owner_url)
    factory = make_sessionmaker(engine)
    out = []
    try:
        with scoped(factory, SYSTEM) as s, s.begin():
            town = s.execute(text("SELECT id, code, name FROM town ORDER BY code LIMIT 1")).mappings().first()
            if town is None:
                return []
            villages = s.execute(text(
                "SELECT v.id, v.code, v.name FROM village v WHERE v.town_id = :t ORDER BY v.code LIMIT 2"),
                {"t": town["id"]}).mappings().all()
            worker = s.execute(text(
                "SELECT g.worker_id FROM grid g WHERE g.village_id = :v AND g.valid_to IS NULL AND g.worker_id IS NOT NULL"
                " ORDER BY g.code LIMIT 1"), {"v": villages[0]["id"]}).scalar()
            for username, role, display in DEMO_ACCOUNTS:
                unit = {"village": villages[0], "village2": villages[1]}.get(username)
                kwargs: dict = {}
                label = "全县 county"
                if role == "village_official":
                    kwargs["village_code"] = unit["code"]
                    label = unit["name"]
                elif role == "town_official":
                    kwargs["town_code"] = town["code"]
                    label = town["name"]
                elif role == "grid_worker":
                    kwargs["person_id"] = worker
                    label = f"{villages[0]['name']} 网格"
                if users.find_user(s, username) is None:
                    users.create_user(s, username, demo_password(username), role, display_name=display,
                                      is_demo=True, **kwargs)
                out.append({"username": username, "password": demo_password(username), "role": role, "unit": label})
    finally:
        engine.dispose()
    return out
