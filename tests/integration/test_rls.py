"""The village boundary holds below the UI: RLS under pooling, forged callbacks, the catalog."""
from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import text

from etl.demo_accounts import demo_password
from geodata.db import SYSTEM, Scope, apply_scope, make_engine


def test_ten_thousand_alternating_transactions_over_two_connections_never_leak(pg, demo_db):
    engine = make_engine(pg.app_url, pool_size=2, max_overflow=0)
    with engine.begin() as conn:
        apply_scope(conn, SYSTEM)
        a, b = [r[0] for r in conn.execute(text("SELECT id FROM village ORDER BY id LIMIT 2"))]
    leaks = 0
    try:
        for i in range(10_000):
            mine = a if i % 2 == 0 else b
            with engine.begin() as conn:
                apply_scope(conn, Scope.villages([mine], "village_official"))
                seen = conn.execute(text(
                    "SELECT count(*) FILTER (WHERE village_id <> :v) FROM sensor"), {"v": mine}).scalar()
                leaks += seen
            if i % 1000 == 999:  # and now and then a transaction that sets no scope at all
                with engine.begin() as conn:
                    assert conn.execute(text("SELECT count(*) FROM sensor")).scalar() == 0
                    assert conn.execute(text("SELECT count(*) FROM village")).scalar() == 0
    finally:
        engine.dispose()
    assert leaks == 0


def test_catalog_every_village_scoped_table_is_forced_and_the_app_cannot_bypass(owner_engine, app_engine):
    with owner_engine.connect() as conn:
        scoped_tables = conn.execute(text(
            """
            SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,
                   (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid) AS policies
              FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
             WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
               AND a.attname = 'village_id' AND NOT a.attisdropped
               AND NOT c.relispartition
            """)).all()
        assert len(scoped_tables) >= 7
        # app_user.village_id ties an official to a village; users are read at login,
        # before any scope exists, and no callback exposes that table.
        exempt = {"app_user"}
        bad = [r[0] for r in scoped_tables if r[0] not in exempt and not (r[1] and r[2] and r[3] > 0)]
        assert not bad, f"village-scoped tables without forced RLS: {bad}"
        # No view owned by a superuser (views run with the owner's rights) reads scoped tables.
        views = conn.execute(text(
            """
            SELECT DISTINCT v.relname FROM pg_class v
              JOIN pg_rewrite rw ON rw.ev_class = v.oid
              JOIN pg_depend d ON d.objid = rw.oid
              JOIN pg_class t ON t.oid = d.refobjid
              JOIN pg_roles o ON o.oid = v.relowner
             WHERE v.relkind IN ('v', 'm') AND o.rolsuper AND t.relname = ANY(:names)
            """), {"names": [r[0] for r in scoped_tables]}).all()
        assert views == []
    with app_engine.connect() as conn:
        row = conn.execute(text(
            "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")).one()
        assert row == (False, False)
        owned = conn.execute(text(
            "SELECT count(*) FROM pg_class WHERE relowner = (SELECT oid FROM pg_roles WHERE rolname = current_user)"
        )).scalar()
        assert owned == 0


# -- forged callbacks --------------------------------------------------------------

def _ids_in_layout(node, found):
    if isinstance(node, dict):
        props = node.get("props")
        if isinstance(props, dict) and "id" in props:
            found.append(props["id"])
        for v in node.values():
            _ids_in_layout(v, found)
    elif isinstance(node, list):
        for v in node:
            _ids_in_layout(v, found)
    return found


def _matches(pattern: dict, concrete) -> bool:
    if not isinstance(concrete, dict) or set(pattern) != set(concrete):
        return False
    return all(v == ["ALL"] or v == ["MATCH"] or v == ["ALLSMALLER"] or concrete[k] == v for k, v in pattern.items())


def _expand(spec, layout_ids, value_for):
    raw = spec["id"]
    if raw.startswith("{") and any(v == ["MATCH"] for v in json.loads(raw).values()):
        # A forged request names components of another village's feature: fill the
        # MATCH keys with its ids (the renderer sends MATCH items as a one-item list).
        pattern = json.loads(raw)
        concrete = {k: (forged_match_value(k) if v == ["MATCH"] else v) for k, v in pattern.items()}
        return [{"id": concrete, "property": spec["property"], "value": value_for(concrete, spec["property"])}]
    if raw.startswith("{") and any(isinstance(v, list) for v in json.loads(raw).values()):
        pattern = json.loads(raw)
        concrete = [i for i in layout_ids if _matches(pattern, i)]
        return [{"id": i, "property": spec["property"], "value": value_for(i, spec["property"])} for i in concrete]
    cid = json.loads(raw) if raw.startswith("{") else raw
    return {"id": cid, "property": spec["property"], "value": value_for(cid, spec["property"])}


def _page_layout_as(app, username):
    """The map page's layout as the given user sees it, as JSON."""
    from flask_login import login_user
    from plotly.io.json import to_json_plotly

    from geodata import users
    from map_app.auth import SessionUser
    from map_app.layout import serve_layout

    database = app.server.extensions["dvmap"]
    with app.server.test_request_context("/"):
        with database.session(SYSTEM) as s:
            user = users.find_user(s, username)
            scope = users.scope_for(s, user)
        login_user(SessionUser(user, scope))
        return json.loads(to_json_plotly(serve_layout()))


FORGED_MATCH: dict = {}


def forged_match_value(key: str):
    return FORGED_MATCH.get(key, 1)


def _split_output(output: str):
    parts = output[2:-2].split("...") if output.startswith("..") else [output]
    specs = []
    for part in parts:
        cid, prop = part.rsplit(".", 1)
        specs.append({"id": cid, "property": prop.split("@")[0]})
    return specs


@pytest.fixture(scope="module")
def other_village(owner_engine, demo_db):
    """A village the demo village official must never see, with ids of its features."""
    with owner_engine.begin() as conn:
        apply_scope(conn, SYSTEM)
        mine = conn.execute(text("SELECT village_id FROM app_user WHERE username = 'village'")).scalar()
        v = conn.execute(text(
            "SELECT id, name, code, ST_YMin(geom) s, ST_XMin(geom) w, ST_YMax(geom) n, ST_XMax(geom) e"
            " FROM village WHERE id <> :m ORDER BY id DESC LIMIT 1"), {"m": mine}).mappings().one()
        ids = {k: conn.execute(text(f"SELECT min(id) FROM {t} WHERE village_id = :v"), {"v": v["id"]}).scalar()
               for k, t in (("grids", "grid"), ("resources", "resource"), ("sensors", "sensor"))}
        grid_codes = [r[0] for r in conn.execute(text("SELECT code FROM grid WHERE village_id = :v"), {"v": v["id"]})]
        grid_uid = conn.execute(text("SELECT uid::text FROM grid WHERE village_id = :v AND valid_to IS NULL LIMIT 1"),
                                {"v": v["id"]}).scalar()
        sensor_codes = [r[0] for r in conn.execute(text("SELECT code FROM sensor WHERE village_id = :v LIMIT 50"),
                                                   {"v": v["id"]})]
    return {**dict(v), "grid_uid": grid_uid, "feature_ids": {**ids, "villages": v["id"], "population": v["id"]},
            "secrets": [v["name"], v["code"], *grid_codes, *sensor_codes]}


def test_replaying_every_callback_with_another_villages_ids_reveals_nothing(pg, demo_db, other_village, owner_engine):
    owner_engine_for_counts = owner_engine
    from map_app.app import create_app
    from map_app.pages import ID_PAGES

    app = create_app(pg.app_url)
    c = app.server.test_client()
    token = re.search(r'name="csrf" value="([^"]+)"', c.get("/login").get_data(as_text=True)).group(1)
    assert c.post("/login", data={"csrf": token, "username": "village",
                                  "password": demo_password("village")}).status_code == 302
    layout_ids = _ids_in_layout(_page_layout_as(app, "village"), [])
    assert {"type": "layer", "name": "villages"} in layout_ids
    deps = c.get("/_dash-dependencies").get_json()
    assert deps, "no callbacks?"
    ov = other_village
    bounds = [[ov["s"], ov["w"]], [ov["n"], ov["e"]]]
    FORGED_MATCH.update(event=ov["feature_ids"].get("events") or 1)

    def value_for(cid, prop):
        name = cid.get("name") if isinstance(cid, dict) else cid
        if isinstance(cid, dict) and cid.get("type") == "evt-field" and cid.get("field") == "grid":
            return ov["grid_uid"]
        if isinstance(cid, dict) and cid.get("type") == "layer-option":
            return {"level": "grid", "metric": "total", "village": str(ov["id"])}.get(cid.get("key"))
        if prop == "clickData":
            fid = ov["feature_ids"].get(name)
            return {"type": "Feature", "id": fid, "properties": {"id": fid, "kind": name}}
        return {
            "bounds": bounds, "zoom": 16, "checked": True, "search": f"?village={ov['id']}",
            "viewport": None, "hideout": {}, "data": {} if name == "layer-keys" else ("zh" if name == "lang" else None),
        }.get(prop, str(ov["id"]) if name == "village-search" else None)

    def writes_in_other_village():
        with owner_engine_for_counts.begin() as conn:
            apply_scope(conn, SYSTEM)
            return conn.execute(text(
                "SELECT (SELECT count(*) FROM event WHERE village_id = :v)"
                " + (SELECT count(*) FROM event_history WHERE village_id = :v)"
                " + (SELECT count(*) FROM grid WHERE village_id = :v)"), {"v": ov["id"]}).scalar()

    before = writes_in_other_village()
    replayed = 0
    for dep in deps:
        if dep.get("clientside_function"):
            continue
        inputs = [_expand(s, layout_ids, value_for) for s in dep["inputs"]]
        state = [_expand(s, layout_ids, value_for) for s in dep.get("state", [])]
        outs = [_expand(s, layout_ids, lambda *_: None) for s in _split_output(dep["output"])]
        # Outputs: ALL patterns are lists; a MATCH output names one component.
        outs = [{"id": x[0]["id"], "property": x[0]["property"]} if isinstance(x, list) and '"MATCH"' in spec["id"]
                else [{"id": o["id"], "property": o["property"]} for o in x] if isinstance(x, list)
                else {"id": x["id"], "property": x["property"]}
                for x, spec in zip(outs, _split_output(dep["output"]))]
        for trig in dep["inputs"]:
            body = {
                "output": dep["output"], "outputs": outs if len(outs) > 1 or dep["output"].startswith("..") else outs[0],
                "inputs": inputs, "state": state, "changedPropIds": [],
            }
            exp = _expand(trig, layout_ids, value_for)
            first = exp[0] if isinstance(exp, list) and exp else exp
            if first:
                cid = json.dumps(first["id"], separators=(",", ":"), sort_keys=True) \
                    if isinstance(first["id"], dict) else first["id"]
                body["changedPropIds"] = [f"{cid}.{first['property']}"]
            r = c.post("/_dash-update-component", json=body)
            # The callbacks of pages a village official may not open are refused before they run.
            refused = r.status_code == 403 and any(f'"{p}' in dep["output"] or dep["output"].lstrip(".").startswith(p)
                                                   for p in ID_PAGES)
            assert r.status_code in (200, 204) or refused, \
                (dep["output"], r.status_code, r.get_data(as_text=True)[:300])
            payload = r.get_data(as_text=True)
            leaked = [s for s in ov["secrets"] if s and s in payload]
            assert not leaked, f"{dep['output']} returned {leaked[:3]} of another village"
            replayed += 1
    assert replayed >= len([d for d in deps if not d.get("clientside_function")])
    assert writes_in_other_village() == before, "a forged callback wrote into another village"
