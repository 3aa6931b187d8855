"""Pages and their callbacks by role (README "Pages and APIs"), through the real app and its login.

Every role × every page: the URL answers 200 or a bilingual 403; Dash's page routing
(in-app navigation) renders the refusal instead of the page; and every server-side
callback of a guarded page is refused (403) to a role without the page, before it runs.
"""
from __future__ import annotations

import json
import re

import pytest

from etl.demo_accounts import demo_password

USERS = {  # demo account of each role
    "county_leader": "leader", "town_official": "town", "village_official": "village", "grid_manager": "gridmgr",
    "grid_worker": "worker", "planner": "planner", "admin": "admin",
}
# Written out from the README's table, not taken from map_app.pages: the test checks the code against it.
ALLOWED = {
    "/": set(USERS.values()),
    "/bigscreen": {"leader", "town", "planner", "admin"},
    "/bigscreen/admin": {"admin"},
    "/analysis": {"planner", "leader", "gridmgr", "village", "town", "admin"},
    "/grids": {"gridmgr", "admin"},
    "/admin/users": {"admin"},
    "/admin/import/": {"admin"},
}
# Component-id prefixes of each guarded page's callbacks (callbacks/*_ids.py, callbacks/bigscreen*.py).
CALLBACK_PREFIXES = {"an-": "/analysis", "bs-": "/bigscreen", "bsa-": "/bigscreen/admin", "grid-": "/grids"}


@pytest.fixture(scope="module")
def app(pg, demo_db):
    from map_app.app import create_app

    return create_app(pg.app_url)


@pytest.fixture(scope="module")
def clients(app):
    out = {}
    for username in USERS.values():
        c = app.server.test_client()
        token = re.search(r'name="csrf" value="([^"]+)"', c.get("/login").get_data(as_text=True)).group(1)
        r = c.post("/login", data={"csrf": token, "username": username, "password": demo_password(username),
                                   "next": "/"})
        assert r.status_code == 302, (username, r.status_code)
        out[username] = c
    return out


@pytest.fixture(scope="module")
def deps(clients):
    return clients["admin"].get("/_dash-dependencies").get_json()


@pytest.mark.parametrize("path", list(ALLOWED))
def test_each_role_opens_only_the_pages_the_readme_gives_it(clients, path):
    for username, c in clients.items():
        r = c.get(path, headers={"Accept": "text/html"})
        body = r.get_data(as_text=True)
        if username in ALLOWED[path]:
            assert r.status_code == 200, (path, username, r.status_code)
        else:
            assert r.status_code == 403, (path, username, r.status_code)
            assert "无权访问" in body and "No access" in body, (path, username, body[:300])


def _router(deps):
    return next(d for d in deps if "_pages_content" in d["output"])


def _route(c, deps, path):
    """Dash's page routing callback, as the browser posts it when the app navigates to ``path``."""
    dep = _router(deps)
    outputs = [{"id": o.rsplit(".", 1)[0], "property": o.rsplit(".", 1)[1]}
               for o in dep["output"].strip(".").split("...")]
    values = {"pathname": path, "search": "", "hash": "", "href": "http://localhost" + path}
    inputs = [{"id": i["id"], "property": i["property"], "value": values.get(i["property"])} for i in dep["inputs"]]
    state = [{"id": s["id"], "property": s["property"], "value": values.get(s["property"])}
             for s in dep.get("state", [])]
    return c.post("/_dash-update-component", json={
        "output": dep["output"], "outputs": outputs if len(outputs) > 1 else outputs[0], "inputs": inputs,
        "state": state, "changedPropIds": [f"{inputs[0]['id']}.{inputs[0]['property']}"]})


@pytest.mark.parametrize("path,marker", [("/analysis", '"an-map"'), ("/bigscreen", '"bs-root"'),
                                         ("/grids", '"grid-map"')])
def test_in_app_navigation_renders_the_refusal_not_the_page(clients, deps, path, marker):
    for username, c in clients.items():
        r = _route(c, deps, path)
        assert r.status_code == 200, (path, username, r.get_data(as_text=True)[:300])
        body = r.get_data(as_text=True)
        if username in ALLOWED[path]:
            assert marker in body and "page-refusal" not in body, (path, username)
        else:
            assert "page-refusal" in body and marker not in body, (path, username)


def _first_id(output: str) -> str:
    """The first component id of a callback's output spec ('id.prop', '..a.p...b.q..', JSON ids)."""
    first = output.strip(".").split("...")[0]
    cid = first.rsplit(".", 1)[0]
    if cid.startswith("{"):
        return json.loads(cid)["type"]
    return cid


def _page_of(output: str) -> str | None:
    cid = _first_id(output)
    matches = [p for p in CALLBACK_PREFIXES if cid.startswith(p)]
    return CALLBACK_PREFIXES[max(matches, key=len)] if matches else None


def _call(c, dep):
    outputs = [{"id": o.rsplit(".", 1)[0], "property": o.rsplit(".", 1)[1].split("@")[0]}
               for o in dep["output"].strip(".").split("...")]
    inputs = [{"id": i["id"], "property": i["property"], "value": None} for i in dep["inputs"]]
    return c.post("/_dash-update-component", json={
        "output": dep["output"], "outputs": outputs if len(outputs) > 1 else outputs[0], "inputs": inputs,
        "state": [{"id": s["id"], "property": s["property"], "value": None} for s in dep.get("state", [])],
        "changedPropIds": []})


def test_callbacks_of_a_page_are_refused_to_roles_without_it(clients, deps):
    guarded = [(d, _page_of(d["output"])) for d in deps if not d.get("clientside_function")]
    guarded = [(d, p) for d, p in guarded if p]
    by_page = {p: sum(1 for _, q in guarded if q == p) for p in CALLBACK_PREFIXES.values()}
    assert all(n > 0 for n in by_page.values()), by_page
    refused = 0
    for dep, page in guarded:
        for username, c in clients.items():
            if username in ALLOWED[page]:
                continue
            r = _call(c, dep)
            assert r.status_code == 403, (dep["output"][:80], username, r.status_code, r.get_data(as_text=True)[:200])
            body = r.get_json()
            assert body["message_zh"] and body["message_en"], body
            refused += 1
    assert refused > 50


def test_the_analysis_callbacks_still_run_for_a_planner_and_the_map_for_a_worker(clients, deps):
    an = next(d for d in deps if _page_of(d["output"]) == "/analysis" and not d.get("clientside_function"))
    assert _call(clients["worker"], an).status_code == 403
    assert _call(clients["planner"], an).status_code != 403
    # a worker's own page keeps its callbacks: the map's layers load
    layer = next(d for d in deps if not d.get("clientside_function") and _page_of(d["output"]) is None
                 and "_pages" not in d["output"])
    assert _call(clients["worker"], layer).status_code != 403
