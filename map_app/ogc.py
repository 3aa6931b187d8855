"""OGC API – Features (Part 1: Core), read-only, at ``/ogc/``.

Implements the *core*, *geojson* and *oas30* conformance classes: landing page,
conformance, an OpenAPI 3.0 description, collections, ``items`` with ``bbox``,
``datetime`` (grids, sensors, population, events), ``limit``/``offset`` paging with
``next``/``prev`` links, and ``items/{featureId}`` — enough for GDAL's OAPIF driver
(``ogrinfo OAPIF:http://host/ogc``), QGIS and ArcGIS Pro.

Access follows the rest of the app: every query runs in ``Database.session()``, scoped
(RLS) to the logged-in user of the request; a client without a browser session can send
an API token (``Authorization: Bearer <token>`` or ``?api_key=``) which the hook given to
:func:`init_ogc` turns into a :class:`~geodata.db.Scope`. Without either, 401.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Callable

from flask import Blueprint, Flask, current_app, g, jsonify, request, url_for

from geodata import export as gx
from geodata.config import STORAGE_SRID, WGS84_SRID
from geodata.db import Scope

blueprint = Blueprint("ogc", __name__, url_prefix="/ogc")

CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
]
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
GEOJSON = "application/geo+json"
JSON = "application/json"
OPENAPI = "application/vnd.oai.openapi+json;version=3.0"
DEFAULT_LIMIT = 100
_EXT_TOKEN = "dvmap_ogc_token_scope"


def init_ogc(app, token_scope: Callable[[str], Scope | None] | None = None) -> None:
    """Register the OGC API blueprint on ``app`` (a Dash app or its Flask server).

    Parameters
    ----------
    app : dash.Dash or flask.Flask
        ``server.extensions["dvmap"]`` must be the app's :class:`geodata.db.Database`.
    token_scope : callable, optional
        ``token_scope(token) -> Scope | None``: the scope of an API token (None = not a
        valid token). Without it, only requests with a logged-in session are served.
    """
    server: Flask = getattr(app, "server", app)
    server.extensions[_EXT_TOKEN] = token_scope
    if blueprint.name not in server.blueprints:  # idempotent: a second call only changes the hook
        server.register_blueprint(blueprint)


def api_client_token_scope(database) -> Callable[[str], Scope | None]:
    """A ``token_scope`` hook backed by the ``api_client`` keys (the ones Open311 uses).

    A key limited to some villages reads only those villages' features; a county key
    reads the county. Use as ``init_ogc(app, token_scope=api_client_token_scope(database))``.
    """
    from geodata.db import SYSTEM
    from geodata.events import find_api_client

    def _scope(token: str) -> Scope | None:
        with database.session(SYSTEM) as s:
            client = find_api_client(s, token)
        if client is None:
            return None
        return Scope(client.village_ids, "api_client", None)

    return _scope


# -- helpers -------------------------------------------------------------------------------
def _lang() -> str:
    if request.args.get("lang") in ("zh", "en"):
        return request.args["lang"]
    best = request.accept_languages.best_match(["zh", "en"]) if request.accept_languages else None
    return best or "zh"


def _error(status: int, code: str, zh: str, en: str):
    resp = jsonify(code=code, description=f"{zh} / {en}")
    resp.status_code = status
    if status == 401:
        resp.headers["WWW-Authenticate"] = 'Bearer realm="dvmap"'
    return resp


def _token() -> str | None:
    auth = request.headers.get("Authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip() or None
    return request.args.get("api_key") or None


def _link(endpoint: str, rel: str, type_: str, title: str | None = None, **values) -> dict:
    if request.args.get("api_key"):
        values.setdefault("api_key", request.args["api_key"])
    link = {"href": url_for(endpoint, _external=True, **values), "rel": rel, "type": type_}
    if title:
        link["title"] = title
    return link


def _session():
    return current_app.extensions["dvmap"].session(g.get("ogc_scope"))


def _json(data: dict, media: str = JSON):
    resp = jsonify(data)
    resp.headers["Content-Type"] = media
    return resp


@blueprint.before_request
def _authorise():
    token = _token()
    if token is not None:
        hook = current_app.extensions.get(_EXT_TOKEN)
        scope = hook(token) if hook else None
        if scope is None:
            return _error(401, "Unauthorized", "API 令牌无效。", "Invalid API token.")
        g.ogc_scope = scope
        return None
    scope = current_app.extensions["dvmap"].scope_provider()
    if scope is None or scope.role == "anonymous":
        return _error(401, "Unauthorized", "需要登录或 API 令牌。", "Log in or send an API token.")
    g.ogc_scope = None  # the request's own scope (Database.scope_provider)
    return None


# -- resources ------------------------------------------------------------------------------
@blueprint.get("/")
@blueprint.get("", strict_slashes=False)
def landing():
    lang = _lang()
    return _json({
        "title": "数字乡村一张图 OGC API" if lang != "en" else "Digital Village One Map OGC API",
        "description": ("县域图层(行政村、网格、公共资源、感知设备、人口、事件、自定义图层)的只读要素服务。"
                        if lang != "en" else "Read-only features of the county's layers."),
        "links": [
            _link("ogc.landing", "self", JSON, "本页 / This document"),
            _link("ogc.openapi", "service-desc", OPENAPI, "API 定义 / API definition"),
            _link("ogc.conformance", "conformance", JSON, "符合性 / Conformance"),
            _link("ogc.collection_list", "data", JSON, "图层 / Collections"),
        ],
    })


@blueprint.get("/conformance")
def conformance():
    return _json({"conformsTo": CONFORMANCE})


def _collection_doc(session, coll: gx.Collection, lang: str) -> dict:
    return {
        "id": coll.id,
        "title": f"{coll.title_zh} / {coll.title_en}",
        "description": coll.title(lang),
        "itemType": "feature",
        "crs": [CRS84],
        "storageCrs": CRS84,
        "extent": gx.extent(session, coll),
        "links": [
            _link("ogc.collection", "self", JSON, coll.title(lang), cid=coll.id),
            _link("ogc.items", "items", GEOJSON, coll.title(lang), cid=coll.id),
        ],
    }


@blueprint.get("/collections")
def collection_list():
    lang = _lang()
    with _session() as s:
        docs = [_collection_doc(s, c, lang) for c in gx.collections(s)]
    return _json({"collections": docs, "links": [_link("ogc.collection_list", "self", JSON)], "crs": [CRS84]})


@blueprint.get("/collections/<cid>")
def collection(cid: str):
    with _session() as s:
        coll = gx.get_collection(s, cid)
        if coll is None:
            return _error(404, "NotFound", f"没有图层 {cid}。", f"No collection {cid}.")
        return _json(_collection_doc(s, coll, _lang()))


def _int_arg(name: str, default: int, lo: int, hi: int) -> int:
    raw = request.args.get(name)
    if raw in (None, ""):
        return default
    value = int(raw)
    if value < lo:
        raise ValueError(f"{name} < {lo}")
    return min(value, hi)


@blueprint.get("/collections/<cid>/items")
def items(cid: str):
    try:
        limit = _int_arg("limit", DEFAULT_LIMIT, 1, gx.MAX_LIMIT)
        offset = _int_arg("offset", 0, 0, 2**31)
        bbox = gx.parse_bbox(request.args.get("bbox"))
        when = gx.parse_datetime(request.args.get("datetime"))
    except ValueError as exc:
        return _error(400, "InvalidParameterValue", f"参数无效:{exc}", f"Invalid parameter: {exc}")
    crs = request.args.get("bbox-crs")
    if crs and crs not in (CRS84, f"http://www.opengis.net/def/crs/EPSG/0/{STORAGE_SRID}",
                           f"http://www.opengis.net/def/crs/EPSG/0/{WGS84_SRID}"):
        return _error(400, "InvalidParameterValue", "bbox-crs 只支持 CRS84。", "bbox-crs must be CRS84.")
    with _session() as s:
        coll = gx.get_collection(s, cid)
        if coll is None:
            return _error(404, "NotFound", f"没有图层 {cid}。", f"No collection {cid}.")
        feats, matched = gx.items(s, coll, bbox=bbox, when=when, limit=limit, offset=offset)
    keep = {k: v for k, v in request.args.items() if k in ("bbox", "datetime", "f", "lang", "bbox-crs")}
    links = [_link("ogc.items", "self", GEOJSON, cid=cid, limit=limit, offset=offset, **keep),
             _link("ogc.collection", "collection", JSON, cid=cid)]
    if offset + len(feats) < matched:
        links.append(_link("ogc.items", "next", GEOJSON, "下一页 / Next page", cid=cid, limit=limit,
                           offset=offset + limit, **keep))
    if offset > 0:
        links.append(_link("ogc.items", "prev", GEOJSON, "上一页 / Previous page", cid=cid, limit=limit,
                           offset=max(0, offset - limit), **keep))
    return _json({
        "type": "FeatureCollection",
        "features": feats,
        "numberMatched": matched,
        "numberReturned": len(feats),
        "timeStamp": datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "links": links,
    }, GEOJSON)


@blueprint.get("/collections/<cid>/items/<fid>")
def feature(cid: str, fid: str):
    with _session() as s:
        coll = gx.get_collection(s, cid)
        if coll is None:
            return _error(404, "NotFound", f"没有图层 {cid}。", f"No collection {cid}.")
        try:
            number = int(fid)
        except ValueError:
            number = None
        feat = gx.item(s, coll, number) if number is not None and 0 < number < 2**63 else None
    if feat is None:
        return _error(404, "NotFound", f"要素 {fid} 不存在或无权查看。", f"Feature {fid} not found or not visible.")
    feat = dict(feat)
    feat["links"] = [_link("ogc.feature", "self", GEOJSON, cid=cid, fid=fid),
                     _link("ogc.collection", "collection", JSON, cid=cid)]
    return _json(feat, GEOJSON)


@blueprint.get("/api")
def openapi():
    server = url_for("ogc.landing", _external=True).rstrip("/")
    cid = {"name": "collectionId", "in": "path", "required": True, "schema": {"type": "string"}}
    ok = {"200": {"description": "OK"}}
    params = [
        {"name": "bbox", "in": "query", "style": "form", "explode": False,
         "schema": {"type": "array", "minItems": 4, "maxItems": 6, "items": {"type": "number"}}},
        {"name": "datetime", "in": "query", "schema": {"type": "string"}},
        {"name": "limit", "in": "query",
         "schema": {"type": "integer", "minimum": 1, "maximum": gx.MAX_LIMIT, "default": DEFAULT_LIMIT}},
        {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0, "default": 0}},
    ]
    doc = {
        "openapi": "3.0.2",
        "info": {"title": "数字乡村一张图 OGC API – Features", "version": "1.0.0"},
        "servers": [{"url": server}],
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
        "paths": {
            "/": {"get": {"operationId": "getLandingPage", "responses": ok}},
            "/conformance": {"get": {"operationId": "getConformance", "responses": ok}},
            "/collections": {"get": {"operationId": "getCollections", "responses": ok}},
            "/collections/{collectionId}": {"get": {"operationId": "describeCollection", "parameters": [cid],
                                                    "responses": ok}},
            "/collections/{collectionId}/items": {"get": {"operationId": "getFeatures", "parameters": [cid, *params],
                                                          "responses": ok}},
            "/collections/{collectionId}/items/{featureId}": {"get": {
                "operationId": "getFeature",
                "parameters": [cid, {"name": "featureId", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": ok}},
        },
    }
    return _json(doc, OPENAPI)
