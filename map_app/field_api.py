"""The field app's JSON API under ``/api/field/`` (contract: the field app's API notes).

Behind the login guard of map_app/auth.py (a JSON 401 for ``/api/…``); every query
runs with the signed-in user's scope from the server-side session (RLS). Writes
reuse the event service's idempotency keys (reports: ``create_event(client_key=)``,
actions: ``transition(client_key=)``) and the patrol services' own keys, so the
phone's offline queue may resend anything. Refusals are the one bilingual 4xx shape
of map_app/errors.py; a refused write leaves the database as it was (the
transaction rolls back). Times go out as ISO 8601 UTC (``…Z``) plus a ``*_local``
string in the display zone (geodata/clock.py).

Wire it with :func:`init_field_api`.
"""
from __future__ import annotations

from datetime import datetime, timezone
from urllib.parse import urlsplit

from flask import Blueprint, Flask, current_app, jsonify, request
from flask_login import current_user
from sqlalchemy import text

from geodata import events as ev
from geodata.clock import fmt_local
from geodata.field import coverage, patrol, tasks
from geodata.field.common import FieldError, FieldForbidden, FieldUser, check_number, iso_week
from geodata.i18n import BilingualError
from geodata.workflow import ACTION_LABELS, NOTE_REQUIRED, STATE_LABELS, Action, State, allowed_actions

blueprint = Blueprint("field_api", __name__, url_prefix="/api/field")

#: most bytes of one JSON request (2,000 points are ~200 KB)
MAX_JSON_BYTES = 1024 * 1024
MAX_CLIENT_KEY = 64
STEP_LABELS = {"report": ("上报", "Report"), "before": ("处置前", "Before"), "after": ("处置后", "After"),
               "verify": ("核查", "Verification")}


class StaleAction(BilingualError):
    """The event moved on since the phone read it; the answer carries the current state."""

    code, http_status = "stale_version", 409

    def __init__(self, stale: ev.StaleVersion, current: dict | None):
        super().__init__(stale.message_zh, stale.message_en)
        self.current = current

    def as_dict(self) -> dict:
        return {**super().as_dict(), "current": self.current}


# -- helpers ---------------------------------------------------------------------------

def _db():
    return current_app.extensions["dvmap"]


def _me() -> FieldUser:
    u = current_user.user
    return FieldUser(u.id, u.role, u.person_id)


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _json_body() -> dict:
    if request.content_length is not None and request.content_length > MAX_JSON_BYTES:
        raise FieldError("请求过大", "request too large", code="too_large", http_status=413)
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise FieldError("请求须为 JSON 对象", "the request must be a JSON object", code="bad_json")
    return body


def _client_key(value) -> str:
    if not isinstance(value, str) or not 1 <= len(value.strip()) <= MAX_CLIENT_KEY:
        raise FieldError(f"client_key 必填(1–{MAX_CLIENT_KEY} 字符)",
                         f"client_key is required (1–{MAX_CLIENT_KEY} characters)", code="bad_client_key")
    return value.strip()


def _photos(lon, lat, accuracy) -> list:
    """Uploaded files as PhotoIn, read no further than the service's size limit (it checks type/size)."""
    files = request.files.getlist("photo")
    if len(files) > ev.MAX_PHOTOS:
        raise FieldError(f"照片最多 {ev.MAX_PHOTOS} 张", f"at most {ev.MAX_PHOTOS} photos", code="too_many_photos")
    stamp = {"lon": lon, "lat": lat, "accuracy_m": accuracy} if lon is not None and lat is not None else {}
    return [ev.PhotoIn(f.stream.read(ev.MAX_PHOTO_BYTES + 1), **stamp) for f in files]


def _position(form) -> tuple[float | None, float | None, float | None]:
    lon = check_number(form.get("lon"), "lon", low=-180, high=180, required=False)
    lat = check_number(form.get("lat"), "lat", low=-90, high=90, required=False)
    if (lon is None) != (lat is None):
        raise FieldError("lon 与 lat 须同时提供", "lon and lat go together", code="bad_position")
    acc = check_number(form.get("accuracy_m"), "accuracy_m", low=0, high=100000, required=False)
    return lon, lat, acc


def _state_labels(state) -> dict:
    try:
        zh, en = STATE_LABELS[State(state)]
    except (ValueError, KeyError):
        zh = en = str(state)
    return {"state_zh": zh, "state_en": en}


def _action_labels(action) -> tuple[str, str]:
    try:
        return ACTION_LABELS[Action(action)]
    except (ValueError, KeyError):
        return {"report": ("上报", "Report"), "note": ("备注", "Note")}.get(action, (str(action), str(action)))


@blueprint.before_request
def _same_origin():
    # The session cookie is SameSite=Lax; refusing a foreign Origin also stops a page of
    # another site on the same host name (another port) from writing through the phone's login.
    origin = request.headers.get("Origin")
    if request.method != "GET" and origin and urlsplit(origin).netloc != request.host:
        raise FieldForbidden("跨站请求被拒绝", "cross-site request refused")


# -- who am I, categories, tasks ---------------------------------------------------------

@blueprint.get("/me")
def me():
    user = current_user.user
    with _db().session() as s:
        fc, bbox = s.execute(text("""
            SELECT json_build_object('type', 'FeatureCollection', 'features', coalesce(json_agg(json_build_object(
                       'type', 'Feature', 'id', g.id, 'geometry', ST_AsGeoJSON(g.geom, 6)::json,
                       'properties', json_build_object('id', g.id, 'uid', g.uid, 'code', g.code, 'name', g.name,
                                                       'village_name', v.name)) ORDER BY g.code), '[]'::json)),
                   ST_Extent(g.geom)::box2d::text
              FROM grid g JOIN village v ON v.id = g.village_id
             WHERE g.valid_to IS NULL AND g.worker_id = :p"""), {"p": user.person_id or -1}).one()
    box = None
    if bbox:
        nums = bbox.replace("BOX(", "").replace(")", "").replace(",", " ").split()
        box = [float(x) for x in nums]
    return jsonify(user={"id": user.id, "username": user.username, "display_name": user.display_name,
                         "role": user.role},
                   grids=fc, bbox=box, pending_server_time=_iso(datetime.now(timezone.utc)))


@blueprint.get("/categories")
def categories():
    with _db().session() as s:
        tree = ev.categories(s)
    return jsonify([{"code": sub["code"], "name_zh": sub["name_zh"], "name_en": sub["name_en"],
                     "class_code": cls["code"]}
                    for cls in tree for sub in cls["subclasses"] if not sub.get("sensor_type")])


@blueprint.get("/tasks")
def my_tasks():
    lon, lat, _ = _position(request.args)
    with _db().session() as s:
        rows = tasks.my_tasks(s, _me(), lon, lat)
    out = []
    for r in rows:
        out.append({
            "id": r["id"], "state": r["state"], **_state_labels(r["state"]),
            "subclass_zh": r["subclass_zh"], "subclass_en": r["subclass_en"], "description": r["description"],
            "address": r["address"], "urgency": r["urgency"], "due_at": _iso(r["due_at"]),
            "due_local": fmt_local(r["due_at"]), "overdue": bool(r["overdue"]),
            "distance_m": None if r["distance_m"] is None else round(float(r["distance_m"]), 1),
            "lon": r["lon"], "lat": r["lat"], "version": r["version"],
        })
    return jsonify(tasks=out, generated_at=_iso(datetime.now(timezone.utc)))


# -- one event, its actions ----------------------------------------------------------------

def _event_id(value: int) -> int:
    if not 0 < value < 2**63:
        raise ev.EventNotFound(value)
    return value


@blueprint.get("/events/<int:event_id>")
def event_detail(event_id: int):
    role = current_user.role
    with _db().session() as s:
        e = ev.get_event(s, _event_id(event_id), with_personal=False)
        if e is None:
            raise ev.EventNotFound(event_id)
        history = ev.event_history(s, event_id)
        photos = ev.event_photos(s, event_id)
    by_history: dict = {}
    for p in photos:
        by_history.setdefault(p.get("history_id"), []).append(p["id"])
    actions = []
    for a in allowed_actions(e["state"], role):
        zh, en = ACTION_LABELS[a]
        actions.append({"action": a.value, "label_zh": zh, "label_en": en, "note_required": a in NOTE_REQUIRED})
    timeline = []
    for h in history:
        zh, en = _action_labels(h["action"])
        timeline.append({"at": _iso(h["at"]), "at_local": fmt_local(h["at"]), "action": h["action"],
                         "label_zh": zh, "label_en": en, "actor": h["actor"], "note": h["note"],
                         "photo_ids": by_history.get(h["id"], [])})
    photo_out = []
    for p in photos:
        step = p.get("step") or "report"
        zh, en = STEP_LABELS.get(step, (step, step))
        photo_out.append({"id": p["id"], "url": f"/events/{event_id}/photos/{p['id']}", "step": step,
                          "step_zh": zh, "step_en": en, "at_local": fmt_local(p.get("at") or p.get("created_at")),
                          "uploaded_by": p.get("uploaded_by"), "lon": p.get("lon"), "lat": p.get("lat"),
                          "accuracy_m": p.get("accuracy_m")})
    event = {"id": e["id"], "state": e["state"], **_state_labels(e["state"]), "version": e["version"],
             "subclass_zh": e["subclass_zh"], "subclass_en": e["subclass_en"], "description": e["description"],
             "address": e["address"], "lon": e["lon"], "lat": e["lat"], "due_local": fmt_local(e["due_at"]),
             "overdue": bool(e["overdue"]), "reported_local": fmt_local(e["reported_at"]),
             "position_accuracy_m": e.get("position_accuracy_m"), "position_source": e.get("position_source")}
    return jsonify(event=event, actions=actions, timeline=timeline, photos=photo_out)


@blueprint.post("/events/<int:event_id>/actions")
def event_action(event_id: int):
    form = request.form
    key = _client_key(form.get("client_key"))
    action = form.get("action", "")
    try:
        expected = int(form.get("expected_version", ""))
    except ValueError:
        raise FieldError("expected_version 须为整数", "expected_version must be an integer",
                         code="bad_version") from None
    lon, lat, acc = _position(form)
    photos = _photos(lon, lat, acc)
    actor = ev.Actor.for_user(current_user)
    database = _db()
    try:
        with database.session() as s, s.begin():
            replayed = s.execute(text("SELECT EXISTS (SELECT 1 FROM event_history WHERE event_id = :e"
                                      " AND client_key = :k)"), {"e": _event_id(event_id), "k": key}).scalar()
            result = ev.transition(s, event_id, action, actor, expected, form.get("note") or None,
                                   photos=photos, client_key=key)
    except ev.StaleVersion as stale:
        with database.session() as s:
            row = s.execute(text("SELECT state, version FROM event WHERE id = :e"), {"e": event_id}).first()
        raise StaleAction(stale, {"state": row.state, "version": row.version} if row else None) from None
    return jsonify(result={"event_id": result.event_id, "action": result.action, "from_state": result.from_state,
                           "to_state": result.to_state, "version": result.version,
                           "history_id": result.history_id}, replayed=bool(replayed))


@blueprint.post("/reports")
def report():
    form = request.form
    key = _client_key(form.get("client_key"))
    lon, lat, acc = _position(form)
    if lon is None:
        raise FieldError("请提供位置(lon, lat)", "a position (lon, lat) is required", code="missing_position")
    photos = _photos(lon, lat, acc)
    with _db().session() as s, s.begin():
        ref = ev.create_event(
            s, lon=lon, lat=lat, subclass=form.get("subclass", ""), description=form.get("description", ""),
            urgency=form.get("urgency") or "normal", source="patrol", actor=ev.Actor.for_user(current_user),
            photos=photos, client_key=key, position_accuracy_m=acc,
            position_source=form.get("position_source") or None,
        )
        names = s.execute(text("SELECT (SELECT code FROM grid WHERE id = :g) AS grid_code,"
                               " (SELECT name FROM village WHERE id = :v) AS village_name"),
                          {"g": ref.grid_id, "v": ref.village_id}).one()
    body = {"event": {"id": ref.id, "state": ref.state, "grid_code": names.grid_code,
                      "village_name": names.village_name}, "replayed": not ref.created}
    return jsonify(body), (201 if ref.created else 200)


# -- patrols -------------------------------------------------------------------------------

def _iso_fields(data: dict) -> dict:
    return {k: (_iso(v) if isinstance(v, datetime) else v) for k, v in data.items()}


@blueprint.post("/patrols")
def patrol_start():
    body = _json_body()
    with _db().session() as s, s.begin():
        out, created = patrol.start_patrol(s, _me(), body.get("patrol_key"), body.get("started_at"))
    return jsonify(_iso_fields(out)), (201 if created else 200)


@blueprint.post("/patrols/<patrol_key>/points")
def patrol_points(patrol_key: str):
    body = _json_body()
    with _db().session() as s, s.begin():
        out = patrol.add_points(s, _me(), patrol_key, body.get("points"))
    return jsonify(out)


@blueprint.post("/patrols/<patrol_key>/end")
def patrol_end(patrol_key: str):
    body = _json_body()
    with _db().session() as s, s.begin():
        out = patrol.end_patrol(s, _me(), patrol_key, body.get("ended_at"))
    return jsonify(_iso_fields(out))


@blueprint.get("/checkpoints")
def checkpoints():
    with _db().session() as s:
        grids = tasks.my_grid_uids(s, current_user.user.person_id)
        fc = patrol.checkpoints(s, frozenset(grids) if current_user.role == "grid_worker" else None)
    return jsonify(fc)


@blueprint.post("/patrols/<patrol_key>/checkins")
def patrol_checkin(patrol_key: str):
    body = _json_body()
    with _db().session() as s, s.begin():
        out, created = patrol.check_in(s, _me(), patrol_key, body.get("checkpoint_id"), body.get("t"),
                                       body.get("lon"), body.get("lat"), body.get("accuracy_m"))
    return jsonify(out), (201 if created else 200)


@blueprint.get("/patrols")
def my_patrols():
    week = iso_week(request.args.get("week"))
    with _db().session() as s:
        rows = patrol.my_patrols(s, _me(), week)
    return jsonify([
        {"patrol_key": r["patrol_key"], "started_at": _iso(r["started_at"]),
         "started_local": fmt_local(r["started_at"]), "ended_at": _iso(r["ended_at"]),
         "distance_m": r["distance_m"], "duration_s": r["duration_s"], "active": bool(r["active"])}
        for r in rows])


@blueprint.get("/coverage")
def my_coverage():
    """Coverage of the caller's grids this week (or ``?week=``), as the phone shows after a patrol."""
    week = iso_week(request.args.get("week"))
    with _db().session() as s:
        uids = tasks.my_grid_uids(s, current_user.user.person_id)
        rows = [r for uid in uids for r in coverage.weekly_coverage(s, week, grid_uid=uid)]
    return jsonify(week=week.label, grids=rows)


def init_field_api(server: Flask) -> None:
    """Register the ``/api/field/`` blueprint on the Flask ``server``."""
    if blueprint.name not in server.blueprints:
        server.register_blueprint(blueprint)
