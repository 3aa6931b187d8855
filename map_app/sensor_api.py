"""HTTP batch endpoint for sensor gateways that cannot speak MQTT.

``POST /api/sensors/readings`` with header ``X-API-Key: <key>`` (or
``Authorization: Bearer <key>``); the key is a gateway key
(``dvmap sensors gateway-key NAME``: an ``api_client`` of source ``sensor``),
limited to its villages. Body: ``{"readings": [{"sensor": code, "seq": n,
"measured_at": "2025-05-01T08:00:00+08:00", "values": {...}}, …]}`` (at most
10,000) or the list alone.

The batch is one transaction: readings are stored once (a retried batch only
adds what is new), malformed items are refused one by one with a bilingual
reason and the rest is kept. The answer says what happened to each::

    200 {"received", "stored", "late", "duplicates", "rejected": [{"index", "reason",
         "message_zh", "message_en"}], "alarms_opened", "alarms_cleared", "offline_cleared", "events"}

Errors: 401 (no or wrong key), 400 (not a JSON batch), 413 (too large),
503 (database unavailable: retry later). Wire it with :func:`init_sensor_api`.
"""
from __future__ import annotations

import logging

from flask import Blueprint, current_app, jsonify, request
from sqlalchemy.exc import InterfaceError, OperationalError

from geodata import sensors
from geodata.db import Scope, scoped

log = logging.getLogger(__name__)

blueprint = Blueprint("sensor_api", __name__, url_prefix="/api/sensors")

#: Largest request body accepted (bytes): 10,000 readings of a few hundred bytes.
MAX_BODY = 8 * 1024 * 1024


def init_sensor_api(app, session_factory=None) -> None:
    """Register the gateway endpoint on ``app``.

    Parameters
    ----------
    app : flask.Flask
    session_factory : sessionmaker, optional
        From :func:`geodata.db.make_sessionmaker` (the app role's engine); default:
        ``app.extensions["dvmap"].sessionmaker``.
    """
    app.extensions["dvmap_sensor_api"] = session_factory
    if blueprint.name not in app.blueprints:
        app.register_blueprint(blueprint)


def _factory():
    factory = current_app.extensions.get("dvmap_sensor_api")
    return factory if factory is not None else current_app.extensions["dvmap"].sessionmaker


def _error(status: int, code: str, zh: str, en: str):
    response = jsonify(error={"code": code, "message_zh": zh, "message_en": en})
    response.status_code = status
    return response


def _key() -> str | None:
    key = request.headers.get("X-API-Key")
    if not key:
        auth = request.headers.get("Authorization", "")
        if auth.lower().startswith("bearer "):
            key = auth[7:].strip()
    return key or None


@blueprint.post("/readings")
def post_readings():
    # The key, not a login session: the app's login guard lets /api/sensors/ through.
    factory = _factory()
    try:
        with scoped(factory, Scope.villages([], "api_client")) as session:
            gateway = sensors.find_gateway(session, _key())
    except (OperationalError, InterfaceError):
        return _unavailable()
    if gateway is None:
        return _error(401, "bad_key", "缺少或无效的网关密钥(X-API-Key)", "missing or invalid gateway key (X-API-Key)")
    if request.content_length is not None and request.content_length > MAX_BODY:
        return _error(413, "too_large", "请求过大(最多 8 MB)", "request too large (at most 8 MB)")
    body = request.get_json(silent=True)
    readings = body.get("readings") if isinstance(body, dict) else body
    if not isinstance(readings, list):
        return _error(400, "bad_body", "请求体须为 JSON:{\"readings\": [...]}",
                      "the body must be JSON: {\"readings\": [...]}")
    if len(readings) > sensors.MAX_BATCH:
        return _error(413, "too_many", f"一次最多提交 {sensors.MAX_BATCH} 条读数",
                      f"at most {sensors.MAX_BATCH} readings per request")
    scope = Scope(gateway.village_ids, "api_client")
    try:
        with scoped(factory, scope) as session, session.begin():
            result = sensors.ingest(session, [sensors.RawReading(item) for item in readings], source="http",
                                    client=gateway.name)
    except sensors.SensorInputError as exc:
        return _error(400, "bad_batch", exc.message_zh, exc.message_en)
    except (OperationalError, InterfaceError):
        return _unavailable()
    return jsonify(result.as_dict())


def _unavailable():
    log.warning("sensor gateway batch refused: database unavailable")
    response = _error(503, "unavailable", "数据库暂不可用,请稍后重试", "database unavailable, retry later")
    response.headers["Retry-After"] = "5"
    return response
