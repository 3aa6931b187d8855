"""随手拍: the villagers' public pages and JSON API (no account, no login).

Not a Dash page: Dash's ~1 MiB bundle is too heavy for a village 3G phone. Plain
HTML + JavaScript (map_app/static/public/, the shared map_app/static/common/photo.js)
on Leaflet from Debian's libjs-leaflet, village outlines as the only base (no tiles).

* ``GET /report`` — the report page; ``GET /track/<code>`` — follow a report.
* ``POST /api/public/reports`` (multipart) → ``{"tracking_code"}``.
* ``GET /api/public/nearby?lon&lat&category`` — open reports ≤ 50 m of the same class.
* ``POST /api/public/events/<id>/follow`` — 我也遇到了 (me too).
* ``GET /api/public/track/<code>``, ``POST /api/public/track/<code>/rating``.
* ``GET /api/public/categories``, ``GET /api/public/villages?lon&lat`` (outlines near a point),
  ``GET /api/public/photos/<id>`` (photos of public events only).
* ``GET /report/static/…`` and ``/report/vendor/leaflet/…`` — the page's files.

Every write and every tracking read is rate-limited per client address (and reports
per phone) with the ``limits`` library, its counters in PostgreSQL like the login
throttle's, so all workers share them; an exhausted limit answers 429 in both
languages. Sessions run with the county scope of the role ``citizen``; the services
in geodata/public/ decide what is public.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

from flask import Blueprint, Response, current_app, jsonify, request
from limits import parse
from limits.strategies import FixedWindowRateLimiter
from sqlalchemy import text

from geodata import public
from geodata.config import STORAGE_SRID
from geodata.db import Scope, scoped
from geodata.login_throttle import PostgresStorage, client_key
from geodata.workflow import PUBLIC_INITIAL
from map_app.errors import HttpError

blueprint = Blueprint("public_report", __name__)
STATIC = Path(__file__).resolve().parent / "static"
LEAFLET = Path("/usr/share/javascript/leaflet")
TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".png": "image/png",
         ".html": "text/html; charset=utf-8"}
PUBLIC_SCOPE = Scope.county("citizen")
_CODE_PATH = re.compile(r"^[0-9A-Za-z\-]{1,20}$")


def _limit(name: str, default: str):
    return parse(os.environ.get(f"DVMAP_PUBLIC_LIMIT_{name.upper()}", default))


#: (limit name, default): reports per address and per phone, follows, ratings, tracking reads
LIMITS = {"report": "10 per hour", "report_phone": "5 per day", "follow": "30 per hour", "rating": "10 per hour",
          "track": "120 per hour", "nearby": "120 per hour"}


class TooManyRequests(HttpError):
    def __init__(self):
        super().__init__(429, "提交太频繁了,请稍后再试。", "Too many requests: please try again later.")


def _session():
    return scoped(current_app.extensions["dvmap"].sessionmaker, PUBLIC_SCOPE)


def _pepper() -> str:
    return str(current_app.secret_key or "")


def _hit(name: str, *keys: str) -> None:
    """Count one request against limit ``name`` in a transaction of its own; 429 when exhausted.

    Its own transaction: a refused or failed request still counts (abuse is mostly
    bad requests), and the count survives the request's rollback.
    """
    with _session() as session, session.begin():
        limiter = FixedWindowRateLimiter(PostgresStorage(session))
        ok = limiter.hit(_limit(name, LIMITS[name]), "public-" + name, *keys)
    if not ok:
        raise TooManyRequests()


def _addr() -> str:
    return client_key(request.remote_addr)


# -- pages and files -------------------------------------------------------------------

def _page(name: str) -> Response:
    body = (STATIC / "public" / name).read_text(encoding="utf-8")
    for rel in ("static/common/photo.js", "static/public/report.js", "static/public/track.js",
                "static/public/public.css", "vendor/leaflet/leaflet.min.js", "vendor/leaflet/leaflet.css"):
        path = _source(rel)
        if path is not None:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
            body = body.replace("{{" + rel + "}}", f"/report/{rel}?v={digest}")
    response = Response(body, mimetype="text/html")
    response.headers["Cache-Control"] = "no-cache"
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' blob: data:; style-src 'self' 'unsafe-inline'; script-src 'self'")
    return response


@blueprint.get("/report")
@blueprint.get("/report/")
def report_page():
    """The villager's report page (Chinese first, English switch)."""
    return _page("report.html")


@blueprint.get("/track/<code>")
def track_page(code: str):
    """The tracking page of one code (its data comes from /api/public/track/<code>)."""
    if not _CODE_PATH.match(code):
        raise public.PublicNotFound()
    return _page("track.html")


def _source(rel: str) -> Path | None:
    if rel.startswith("vendor/leaflet/"):
        base, name = LEAFLET, rel[len("vendor/leaflet/"):]
        if name == "leaflet.js" and not (base / name).exists():
            name = "leaflet.min.js"
    elif rel.startswith("static/"):
        base, name = STATIC, rel[len("static/"):]
        if not name.startswith(("public/", "common/photo.js")):
            return None
    else:
        return None
    path = (base / name).resolve()
    if base.resolve() not in path.parents or not path.is_file():
        return None
    return path


@blueprint.get("/report/<path:rel>")
def report_file(rel: str):
    path = _source(rel)
    if path is None or path.suffix == ".html":
        raise HttpError(404)
    response = Response(path.read_bytes(), mimetype=TYPES.get(path.suffix, "application/octet-stream"))
    response.headers["Cache-Control"] = "public, max-age=31536000, immutable" if request.args.get("v") else "no-cache"
    return response


# -- JSON API ----------------------------------------------------------------------------

@blueprint.get("/api/public/categories")
def categories():
    return jsonify([{"key": k, "zh": zh, "en": en} for k, zh, en, _sub in public.CATEGORIES])


@blueprint.get("/api/public/villages")
def villages():
    """Village outlines within ~3 km of a point (the map's only base; public administrative data)."""
    lon, lat = _float_arg("lon"), _float_arg("lat")
    with _session() as session:
        rows = session.execute(text(
            """SELECT v.name, ST_AsGeoJSON(ST_SimplifyPreserveTopology(v.geom, 0.0001), 6) AS g,
                      ST_Intersects(v.geom, ST_SetSRID(ST_MakePoint(:lon, :lat), :srid)) AS here
                 FROM village v
                WHERE ST_DWithin(v.geom::geography, ST_SetSRID(ST_MakePoint(:lon, :lat), :srid)::geography, 3000)
                LIMIT 30"""), {"lon": lon, "lat": lat, "srid": STORAGE_SRID}).all()
    return jsonify({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"name": r.name, "here": r.here}, "geometry": json.loads(r.g)}
        for r in rows]})


def _float_arg(name: str) -> float:
    try:
        value = float(request.args.get(name, ""))
    except ValueError:
        raise public.PublicError("位置无效。", "Invalid location.", code="location") from None
    if value != value or abs(value) > 180:
        raise public.PublicError("位置无效。", "Invalid location.", code="location")
    return value


@blueprint.post("/api/public/reports")
def submit():
    """A villager's report (multipart); answers ``{"tracking_code", "status"}`` with 201."""
    form = request.form
    if form.get("website"):  # the honeypot: a field people never see, bots fill in
        raise public.PublicError("提交被拒绝。", "The submission was refused.", code="refused")
    _hit("report", _addr())
    phone = form.get("phone") or None
    if phone:
        _hit("report_phone", public.common.personal_hash(re.sub(r"\D", "", phone), _pepper()))
    photos = [f.read() for f in request.files.getlist("photos")][: public.MAX_PUBLIC_PHOTOS + 1]
    with _session() as session, session.begin():
        receipt = public.submit_report(
            session, category_key=form.get("category"), description=form.get("description"),
            lon=form.get("lon"), lat=form.get("lat"), position_source=form.get("position_source", "gps"),
            accuracy_m=form.get("accuracy"),
            phone=phone, photos=photos, client_ip=request.remote_addr, client_key=form.get("client_key") or None,
            pepper=_pepper(),
        )
    return jsonify({"tracking_code": receipt.tracking_code, "status": PUBLIC_INITIAL.value}), 201


@blueprint.get("/api/public/nearby")
def nearby():
    _hit("nearby", _addr())
    with _session() as session:
        rows = public.nearby(session, lon=request.args.get("lon"), lat=request.args.get("lat"),
                             category_key=request.args.get("category") or request.args.get("class"))
    for r in rows:
        r["reported_at"] = r["reported_at"].date().isoformat()
        r["photo_url"] = f"/api/public/photos/{r['photo_id']}" if r["photo_id"] else None
    return jsonify(rows)


@blueprint.post("/api/public/events/<event_id>/follow")
def follow(event_id: str):
    _hit("follow", _addr())
    body = request.get_json(silent=True) or request.form
    with _session() as session, session.begin():
        out = public.follow(session, event_id, device_key=body.get("device_key"), phone=body.get("phone"),
                            pepper=_pepper())
    return jsonify(out)


@blueprint.get("/api/public/track/<code>")
def track(code: str):
    _hit("track", _addr())
    with _session() as session:
        out = public.track(session, code)
    for step in out["timeline"] + out.get("merged_into", {}).get("timeline", []):
        step["photos"] = [f"/api/public/photos/{p}" for p in step["photos"]]
    out["after_photos"] = [f"/api/public/photos/{p}" for p in out["after_photos"]]
    return jsonify(out)


@blueprint.post("/api/public/track/<code>/rating")
def rating(code: str):
    _hit("rating", _addr())
    body = request.get_json(silent=True) or request.form
    with _session() as session, session.begin():
        out = public.rate(session, code, body.get("level"), body.get("comment"))
    return jsonify(out)


@blueprint.get("/api/public/photos/<photo_id>")
def photo(photo_id: str):
    with _session() as session:
        ctype, data = public.public_photo(session, photo_id)
    response = Response(data, mimetype=ctype)
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response


def init_public_report(server) -> None:
    """Register the villagers' pages and API on the Flask ``server`` (public: see auth.PUBLIC_PREFIXES)."""
    if blueprint.name not in server.blueprints:
        server.register_blueprint(blueprint)
