"""Open311 GeoReport v2 (JSON) for other systems: services, requests, read-back.

Mounted at ``/open311/v2``; every endpoint answers with or without the
``.json`` suffix (XML is not offered). Errors use the spec's format,
``[{"code": 400, "description": "..."}]``, with the same HTTP status; while the
database is unavailable every endpoint answers 503 with ``Retry-After``.

* ``GET services.json`` — the event subclasses (service_code = subclass code).
* ``GET services/{code}.json`` — its definition (attribute ``urgency``).
* ``POST requests.json`` — report; needs ``api_key``; form-encoded (the spec),
  multipart (files in ``media`` become photos) or JSON.
* ``GET requests.json`` — filters ``service_request_id``, ``service_code``,
  ``start_date``, ``end_date``, ``status`` (open/closed, from the workflow).
* ``GET requests/{id}.json``.

Reads return only public fields — never reporter names or contacts, never an
event of a sensitive subclass (table ``sensitive_subclass``: disputes, elderly
living alone …, see geodata/public/), phone-like digit runs in descriptions masked —
and need no key unless ``require_key_for_reads`` is set. A key is scoped to the
villages its client may report into (``api_client.village_ids``).

Wire it with :func:`init_open311` (the app's composition root passes its
sessionmaker). Without that call the blueprint falls back to
``app.extensions["dvmap"]`` (its ``sessionmaker`` and, when present,
``scope_for_api()`` for reads).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from flask import Blueprint, Response, current_app, request
from sqlalchemy.exc import InterfaceError, OperationalError
from werkzeug.exceptions import HTTPException

from geodata import events as ev
from geodata.clock import as_local, to_local
from geodata.db import Scope, scoped
from geodata.i18n import BilingualError
from geodata.public import mask_phones, sensitive_subclasses
from geodata.workflow import STATE_LABELS, State, open311_status, states_for_open311

blueprint = Blueprint("open311", __name__, url_prefix="/open311/v2")

#: Longest report-time window one GET may ask for, and the default window.
DEFAULT_WINDOW = timedelta(days=90)
MAX_RESULTS = 1000
#: Seconds a client is asked to wait (Retry-After) while the database is unavailable.
RETRY_AFTER_S = 5


@dataclass(frozen=True)
class Open311Config:
    """What the blueprint needs from the app."""

    session_factory: Callable[..., Any]
    require_key_for_reads: bool = False
    read_scope: Scope = Scope.county("open311")


def init_open311(app, session_factory, *, require_key_for_reads: bool = False,
                 read_scope: Scope | None = None) -> None:
    """Register the Open311 blueprint on ``app`` with a session factory.

    Parameters
    ----------
    app : flask.Flask
    session_factory : sessionmaker
        From :func:`geodata.db.make_sessionmaker` (the app role's engine); each
        request opens ``session_factory(info={"scope": scope})``.
    require_key_for_reads : bool
        Make GET endpoints require an ``api_key`` too.
    read_scope : Scope, optional
        Scope of public reads (default: the whole county, role ``open311``).
    """
    app.extensions["dvmap_open311"] = Open311Config(
        session_factory, require_key_for_reads, read_scope or Scope.county("open311")
    )
    if blueprint.name not in app.blueprints:
        app.register_blueprint(blueprint)


def _config() -> Open311Config:
    cfg = current_app.extensions.get("dvmap_open311")
    if cfg is not None:
        return cfg
    dv = current_app.extensions.get("dvmap")
    if dv is None or getattr(dv, "sessionmaker", None) is None:
        raise RuntimeError("Open311 is not initialised: call init_open311(app, session_factory)")
    scope = dv.scope_for_api() if hasattr(dv, "scope_for_api") else Scope.county("open311")
    return Open311Config(dv.sessionmaker, False, scope)


# -- errors and responses ------------------------------------------------------------

class Open311Error(Exception):
    """An error answered in the spec's format."""

    def __init__(self, code: int, description: str):
        super().__init__(description)
        self.code = code
        self.description = description


def _json(payload, status: int = 200) -> Response:
    return Response(
        json.dumps(payload, ensure_ascii=False, default=str),
        status=status,
        mimetype="application/json",
    )


def _error(code: int, description: str) -> Response:
    return _json([{"code": code, "description": description}], code)


@blueprint.errorhandler(Open311Error)
def _on_open311_error(exc: Open311Error):
    return _error(exc.code, exc.description)


@blueprint.errorhandler(BilingualError)
def _on_bilingual_error(exc: BilingualError):
    # Raised before a route runs (e.g. the app's NUL-byte check): the spec's format, its status.
    return _error(exc.http_status, _bilingual(exc))


@blueprint.errorhandler(HTTPException)
def _on_http_error(exc: HTTPException):
    from map_app.errors import HttpError  # werkzeug's own texts are English only

    return _error(exc.code or 500, HttpError(exc.code or 500).bilingual())


@blueprint.errorhandler(OperationalError)
@blueprint.errorhandler(InterfaceError)
def _on_database_unavailable(exc: Exception):
    # A client must retry rather than assume the report was lost or taken.
    current_app.logger.warning("Open311 request refused: database unavailable (%s)", type(exc).__name__)
    response = _error(503, "数据库暂不可用,请稍后重试 / database unavailable, retry later")
    response.headers["Retry-After"] = str(RETRY_AFTER_S)
    return response


@blueprint.errorhandler(Exception)
def _on_unexpected(exc: Exception):  # pragma: no cover - exercised only by bugs
    current_app.logger.exception("Open311 request failed")
    return _error(500, "内部错误 / internal server error")


def _bilingual(exc: BilingualError) -> str:
    return f"{exc.message_zh} / {exc.message_en}"


def _strip_format(value: str) -> str:
    if value.endswith(".json"):
        return value[: -len(".json")]
    if value.endswith(".xml"):
        raise Open311Error(400, "仅支持 JSON / only the JSON format is supported")
    return value


# -- parameters ------------------------------------------------------------------------

def _params() -> dict[str, Any]:
    """Request parameters from the query string, a form or a JSON body."""
    out: dict[str, Any] = dict(request.args.items())
    if request.method == "POST":
        if request.is_json:
            body = request.get_json(silent=True)
            if not isinstance(body, dict):
                raise Open311Error(400, "请求体不是 JSON 对象 / the body is not a JSON object")
            for key, value in body.items():
                if key == "attribute" and isinstance(value, dict):
                    out.update({f"attribute[{k}]": v for k, v in value.items()})
                else:
                    out[key] = value
        else:
            out.update(request.form.items())
    return out


def _parse_time(value: str, name: str) -> datetime:
    try:
        dt = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    except ValueError:
        raise Open311Error(400, f"{name} 不是 W3C 日期时间 / {name} is not a W3C date-time") from None
    return as_local(dt)   # no offset given: the county's wall clock (DVMAP_TIMEZONE)


def _iso(dt: datetime | None) -> str | None:
    return None if dt is None else to_local(dt).isoformat(timespec="seconds")


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def _client_or_403(params: dict) -> ev.ApiClient:
    key = params.get("api_key")
    if not key:
        raise Open311Error(403, "缺少 api_key / api_key is required")
    cfg = _config()
    # api_client is not village-scoped; an empty scope sees nothing else.
    with scoped(cfg.session_factory, Scope.villages([], "api_client")) as session:
        client = ev.find_api_client(session, str(key))
    if client is None:
        raise Open311Error(403, "api_key 无效或已停用 / api_key is invalid or revoked")
    return client


def _read_session():
    cfg = _config()
    if cfg.require_key_for_reads:
        _client_or_403(_params())
    return scoped(cfg.session_factory, cfg.read_scope)


# -- services ------------------------------------------------------------------------

def _lang() -> str:
    return "en" if str(request.args.get("locale", "")).lower().startswith("en") else "zh"


@blueprint.get("/services")
@blueprint.get("/services.json")
def services():
    """List the services (event subclasses)."""
    lang = _lang()
    with _read_session() as session:
        tree = ev.categories(session)
    out = []
    for cls in tree:
        group = cls["name_en"] if lang == "en" else cls["name_zh"]
        for sub in cls["subclasses"]:
            name = sub["name_en"] if lang == "en" else sub["name_zh"]
            out.append({
                "service_code": sub["code"],
                "service_name": name,
                "description": f"{cls['name_zh']} › {sub['name_zh']} ({cls['name_en']} › {sub['name_en']})",
                "metadata": True,
                "type": "realtime",
                "keywords": ",".join([cls["name_zh"], sub["name_zh"], sub["name_en"]]),
                "group": group,
            })
    return _json(out)


@blueprint.get("/services/<path:code>")
def service_definition(code: str):
    """One service's definition: its attributes (urgency)."""
    code = _strip_format(code)
    with _read_session() as session:
        known = any(sub["code"] == code for cls in ev.categories(session) for sub in cls["subclasses"])
        urgencies = ev.reference_lists(session)["urgencies"]
    if not known:
        raise Open311Error(404, f"服务代码不存在 / service_code not found: {code}")
    return _json({
        "service_code": code,
        "attributes": [{
            "variable": True,
            "code": "urgency",
            "datatype": "singlevaluelist",
            "required": False,
            "datatype_description": "一般/紧急/特急 (default normal)",
            "order": 1,
            "description": "紧急程度 / Urgency",
            "values": [{"key": u["code"], "name": f"{u['name_zh']} {u['name_en']}"} for u in urgencies],
        }],
    })


# -- requests --------------------------------------------------------------------------

@blueprint.route("/requests", methods=["GET", "POST"])
@blueprint.route("/requests.json", methods=["GET", "POST"])
def requests_endpoint():
    return _post_request() if request.method == "POST" else _list_requests()


def _post_request():
    params = _params()
    client = _client_or_403(params)
    code = params.get("service_code")
    if not code:
        raise Open311Error(400, "缺少 service_code / service_code is required")
    if params.get("lat") in (None, "") or params.get("long") in (None, ""):
        raise Open311Error(
            400, "需要 lat 和 long(不支持仅地址上报)/ lat and long are required (address-only is not supported)"
        )
    try:
        lat, lon = float(params["lat"]), float(params["long"])
    except (TypeError, ValueError):
        raise Open311Error(400, "lat/long 不是数字 / lat and long must be numbers") from None
    name = " ".join(str(params.get(k) or "").strip() for k in ("first_name", "last_name")).strip() or None
    photos = [f.read() for f in request.files.getlist("media")] if request.files else []
    idem = request.headers.get("Idempotency-Key") or params.get("client_key")
    urgency = str(params.get("attribute[urgency]") or "normal")
    cfg = _config()
    scope = Scope(village_ids=client.village_ids, role="api_client")
    actor = ev.Actor(f"open311:{client.name}", "api_client")
    try:
        with scoped(cfg.session_factory, scope) as session, session.begin():
            description = params.get("description")
            if not description or not str(description).strip():
                description = _service_name(session, str(code))
            ref = ev.create_event(
                session, lon=lon, lat=lat, subclass=str(code), description=description,
                urgency=urgency, source=client.source, actor=actor,
                reporter_name=name, reporter_phone=params.get("phone") or None,
                reporter_email=params.get("email") or None, address=params.get("address_string") or None,
                media_url=params.get("media_url") or None, photos=photos, api_client_id=client.id,
                client_key=f"open311:{client.id}:{idem}" if idem else None,
            )
            hours = _sla_hours(session, str(code), urgency)
    except ev.PermissionDenied as exc:
        raise Open311Error(403, _bilingual(exc)) from None
    except BilingualError as exc:
        field = getattr(exc, "field", None)
        if field == "subclass":
            raise Open311Error(400, f"服务代码不存在 / service_code not found: {code}") from None
        raise Open311Error(400, _bilingual(exc)) from None
    return _json(
        [{"service_request_id": str(ref.id), "service_notice": _notice(hours), "account_id": None}],
        201 if ref.created else 200,
    )


def _service_name(session, code: str) -> str:
    for cls in ev.categories(session):
        for sub in cls["subclasses"]:
            if sub["code"] == code:
                return sub["name_zh"]
    raise Open311Error(400, f"服务代码不存在 / service_code not found: {code}")


def _sla_hours(session, code: str, urgency: str) -> float | None:
    from sqlalchemy import text

    value = session.execute(
        text("SELECT hours FROM event_sla WHERE subclass_code = :c AND urgency = :u"), {"c": code, "u": urgency}
    ).scalar()
    return None if value is None else float(value)


def _notice(hours: float | None) -> str | None:
    if hours is None:
        return None
    h = f"{hours:g}"
    return f"派遣后 {h} 小时内处置 / to be handled within {h} hours of dispatch"


def _list_requests():
    params = _params()
    ids = None
    if params.get("service_request_id"):
        try:
            ids = [int(v) for v in _split(params["service_request_id"])]
        except ValueError:
            raise Open311Error(400, "service_request_id 无效 / invalid service_request_id") from None
    states = None
    if params.get("status"):
        states = set()
        for status in _split(params["status"]):
            try:
                states |= states_for_open311(status)
            except ValueError:
                raise Open311Error(400, f"status 只能是 open 或 closed / status must be open or closed: {status}") from None
    end = _parse_time(params["end_date"], "end_date") if params.get("end_date") else None
    start = _parse_time(params["start_date"], "start_date") if params.get("start_date") else None
    if ids is None:
        if end is None:
            end = datetime.now(timezone.utc) if start is None else start + DEFAULT_WINDOW
        if start is None:
            start = end - DEFAULT_WINDOW
        if end < start:
            raise Open311Error(400, "end_date 早于 start_date / end_date is before start_date")
    with _read_session() as session:
        rows = ev.public_requests(
            session, ids=ids, service_codes=_split(params.get("service_code")) or None,
            start=start, end=end, states=[s.value for s in states] if states is not None else None,
            limit=MAX_RESULTS,
        )
        hidden = sensitive_subclasses(session)
    return _json([_public(r) for r in rows if r["subclass_code"] not in hidden])


@blueprint.get("/requests/<path:rid>")
def request_detail(rid: str):
    rid = _strip_format(rid)
    try:
        event_id = int(rid)
    except ValueError:
        raise Open311Error(404, f"请求不存在 / service request not found: {rid}") from None
    with _read_session() as session:
        rows = ev.public_requests(session, ids=[event_id], limit=1)
        rows = [r for r in rows if r["subclass_code"] not in sensitive_subclasses(session)]
    if not rows:
        raise Open311Error(404, f"请求不存在 / service request not found: {rid}")
    return _json([_public(rows[0])])


def _public(r: dict) -> dict:
    """A public GeoReport v2 record: no reporter name, phone or e-mail, ever."""
    zh, en = STATE_LABELS[State(r["state"])]
    hours = r.get("sla_hours")
    return {
        "service_request_id": str(r["id"]),
        "status": open311_status(r["state"]),
        "status_notes": f"{zh} / {en}",
        "service_name": r["subclass_zh"],
        "service_code": r["subclass_code"],
        "description": mask_phones(r["description"]),
        "agency_responsible": r["department_zh"],
        "service_notice": _notice(None if hours is None else float(hours)),
        "requested_datetime": _iso(r["reported_at"]),
        "updated_datetime": _iso(r["updated_at"]),
        "expected_datetime": _iso(r["due_at"]),
        "address": r["address"],
        "address_id": None,
        "zipcode": None,
        "lat": r["lat"],
        "long": r["lon"],
        "media_url": r["media_url"],
    }


@blueprint.route("/<path:rest>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
def unknown(rest: str):
    """Anything else under the prefix: a spec-format 404 (or 405 for a known path)."""
    try:
        endpoint, _ = current_app.url_map.bind("").match(request.path, method="GET")
    except HTTPException:
        endpoint = None
    if endpoint and endpoint != "open311.unknown":
        raise Open311Error(405, f"不支持 {request.method} / method {request.method} not allowed")
    raise Open311Error(404, f"没有这个接口 / no such endpoint: {rest}")
