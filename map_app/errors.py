"""The HTTP edge's errors: every refusal is a 4xx with a short bilingual message.

* :class:`~geodata.i18n.BilingualError` (and its subclasses across geodata/ and etl/)
  answers with its ``http_status`` and ``{"code", "message_zh", "message_en", "error"}``
  (a small HTML page when a browser asks for one);
* werkzeug's HTTP errors (``abort(403)``, 404, 405, 413 …) get the same shape;
* bad input that reaches the database (a NUL byte in text, a number out of range) is
  a 400, a database that cannot be reached a 503 with ``Retry-After``;
* the Dash callback endpoint checks the request envelope before Dash dispatches, and a
  callback that trips over malformed input values answers 400 instead of 500.

Blueprints that speak a spec's error format (Open311, OGC API) keep their own handlers,
which Flask prefers over these. Wire everything with :func:`init_errors`.
"""
from __future__ import annotations

import functools
import html
import logging

from flask import Flask, Response, jsonify, request
from sqlalchemy.exc import DataError, InterfaceError, OperationalError
from werkzeug.exceptions import HTTPException

from geodata.i18n import BilingualError

log = logging.getLogger(__name__)

#: Seconds a client is asked to wait while the database is unavailable.
RETRY_AFTER_S = 5

#: What a person reads for a bare HTTP status (Chinese first, then English).
HTTP_TEXTS: dict[int, tuple[str, str, str]] = {
    400: ("bad_request", "请求无效", "bad request"),
    401: ("unauthorized", "需要登录", "authentication required"),
    403: ("forbidden", "无权访问", "forbidden"),
    404: ("not_found", "未找到", "not found"),
    405: ("method_not_allowed", "不支持该请求方法", "method not allowed"),
    406: ("not_acceptable", "无法提供所要求的格式", "not acceptable"),
    409: ("conflict", "与当前数据冲突,请刷新后重试", "conflict: reload and try again"),
    410: ("gone", "已不存在", "gone"),
    413: ("too_large", "请求过大", "request too large"),
    414: ("uri_too_long", "请求地址过长", "request URI too long"),
    415: ("unsupported_media_type", "不支持的内容类型", "unsupported media type"),
    422: ("unprocessable", "内容无法处理", "unprocessable content"),
    429: ("too_many_requests", "请求过于频繁,请稍后再试", "too many requests, try again later"),
    431: ("headers_too_large", "请求头过大", "request headers too large"),
    500: ("internal_error", "内部错误,已记录日志", "internal error; it has been logged"),
    503: ("unavailable", "服务暂不可用,请稍后重试", "service unavailable, retry later"),
}


class HttpError(BilingualError):
    """A bare HTTP status, worded in both languages (from :data:`HTTP_TEXTS`)."""

    def __init__(self, status: int, message_zh: str | None = None, message_en: str | None = None):
        code, zh, en = HTTP_TEXTS.get(status, (f"http_{status}", f"请求失败({status})", f"request failed ({status})"))
        super().__init__(message_zh or zh, message_en or en, code=code, http_status=status)


class CallbackRequestError(BilingualError):
    """A request to the Dash callback endpoint that is not a well-formed callback call."""

    code = "bad_callback"


PAGE = """<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1"><title>{status} · {zh}</title>
<style>body{{font-family:"Noto Sans CJK SC","WenQuanYi Micro Hei",system-ui,sans-serif;margin:48px auto;
max-width:560px;color:#1f2937}} .en{{color:#64748b}} a{{color:#12355b}}</style></head><body>
<h1>{zh}</h1><p class="en">{en}</p><p><a href="/">← 返回地图 <span class="en">Back to the map</span></a></p>
</body></html>"""


def _wants_html() -> bool:
    # Browsers navigating to a page; fetch/XHR, Dash and API clients get JSON.
    if request.path.startswith(("/_dash", "/api/", "/ogc", "/open311", "/export")):
        return False
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return best == "text/html" and request.accept_mimetypes["text/html"] > request.accept_mimetypes["*/*"]


def error_response(exc: BilingualError) -> Response:
    """The answer for ``exc``: its status, JSON (or a small page for a browser)."""
    status = int(getattr(exc, "http_status", 400) or 400)
    if _wants_html():
        body = PAGE.format(status=status, zh=html.escape(exc.message_zh), en=html.escape(exc.message_en))
        return Response(body, status=status, mimetype="text/html")
    response = jsonify(exc.as_dict())
    response.status_code = status
    return response


def _on_bilingual(exc: BilingualError):
    return error_response(exc)


def _on_http(exc: HTTPException):
    status = exc.code or 500
    error = HttpError(status)
    limit = request.max_content_length if status == 413 else None
    if limit:
        mb = f"{limit / 2**20:g}"
        error = HttpError(413, f"请求过大(最多 {mb} MB)", f"request too large (at most {mb} MB)")
    elif exc.description and exc.description != type(exc).description and status < 500:
        # abort(400, "CSRF token missing or wrong"): keep the route's own (English) detail
        error.message_en = f"{error.message_en}: {exc.description}"[:300]
    response = error_response(error)
    if status == 405 and exc.response is None:
        allowed = getattr(exc, "valid_methods", None)
        if allowed:
            response.headers["Allow"] = ", ".join(allowed)
    if status == 401:
        response.headers.setdefault("WWW-Authenticate", 'Bearer realm="dvmap"')
    return response


def _on_data_error(exc: DataError):
    # Values PostgreSQL refuses (NUL in text, numbers or dates out of range) are the
    # caller's input: the request is bad, the server is fine. Logged for the rare bug.
    log.warning("refused input the database cannot store: %s", str(exc.orig).splitlines()[0] if exc.orig else exc)
    return error_response(BilingualError("参数无效", "invalid parameter", code="invalid_parameter"))


def _on_unavailable(exc: Exception):
    log.warning("request refused: database unavailable (%s)", type(exc).__name__)
    response = error_response(HttpError(503, "数据库暂不可用,请稍后重试", "database unavailable, retry later"))
    response.headers["Retry-After"] = str(RETRY_AFTER_S)
    return response


def _refuse_nul_bytes():
    # PostgreSQL text cannot hold NUL, files cannot be named with it, and no person types
    # it: refuse it in the path and the query string before any route sees it.
    if "\x00" in request.path or any("\x00" in k or "\x00" in v for k, v in request.args.items(multi=True)):
        raise BilingualError("请求含有无效字符(NUL)", "the request contains an invalid character (NUL)",
                             code="nul_byte")


def init_errors(server: Flask) -> None:
    """Register the one set of error handlers on ``server`` (before the Dash app exists)."""
    server.before_request(_refuse_nul_bytes)
    server.register_error_handler(BilingualError, _on_bilingual)
    server.register_error_handler(HTTPException, _on_http)
    server.register_error_handler(DataError, _on_data_error)
    server.register_error_handler(OperationalError, _on_unavailable)
    server.register_error_handler(InterfaceError, _on_unavailable)


# -- the Dash callback endpoint --------------------------------------------------------------

#: Exceptions a callback raises when its input values have a shape it never expected
#: (a dict where a number belongs, a huge int, a NUL byte …): the request is bad.
_INPUT_FAULTS = (TypeError, ValueError, KeyError, IndexError, AttributeError, ArithmeticError)


def _is_item(value) -> bool:
    return (isinstance(value, dict) and isinstance(value.get("id"), (str, dict))
            and isinstance(value.get("property"), str))


def _is_slot(value) -> bool:
    """One input/state/output slot: an item, or a list of items (ALL/MATCH patterns)."""
    return _is_item(value) or (isinstance(value, list) and all(_is_item(v) for v in value))


def _n_outputs(output: str) -> int:
    return len(output[2:-2].split("...")) if output.startswith("..") else 1


def check_envelope(body, callback_map: dict) -> str:
    """Refuse a callback request that Dash could not dispatch; return its output key.

    Parameters
    ----------
    body : object
        The decoded JSON body.
    callback_map : dict
        The app's ``callback_map`` (output key → registration).

    Raises
    ------
    CallbackRequestError
        Not an object, an unknown output, or inputs/state/outputs that do not match the
        callback's definition.
    """
    if not isinstance(body, dict):
        raise CallbackRequestError("回调请求须为 JSON 对象", "a callback request must be a JSON object")
    output = body.get("output")
    if not isinstance(output, str) or output not in callback_map:
        raise CallbackRequestError("未知的回调输出", "unknown callback output", code="unknown_output")
    cb = callback_map[output]
    for key in ("inputs", "state"):
        slots = body.get(key, [])
        if not isinstance(slots, list) or len(slots) != len(cb.get(key) or []) or not all(map(_is_slot, slots)):
            raise CallbackRequestError(f"回调的 {key} 与定义不符", f"the callback's {key} do not match its definition",
                                       code=f"bad_{key}")
    if not cb.get("no_output"):
        outputs = body.get("outputs")
        n = _n_outputs(output)
        ok = (isinstance(outputs, list) and len(outputs) == n and all(map(_is_slot, outputs))) if n > 1 \
            else _is_slot(outputs)
        if not ok:
            raise CallbackRequestError("回调的 outputs 与定义不符", "the callback's outputs do not match its definition",
                                       code="bad_outputs")
    changed = body.get("changedPropIds", [])
    if not isinstance(changed, list) or not all(isinstance(c, str) for c in changed):
        raise CallbackRequestError("changedPropIds 须为字符串列表", "changedPropIds must be a list of strings",
                                   code="bad_changed_props")
    return output


def guard_dash_dispatch(app) -> None:
    """Check each callback request before Dash dispatches it, and turn input faults into 400.

    Parameters
    ----------
    app : dash.Dash
        After its routes exist (``dash.Dash(server=...)`` adds them).
    """
    from dash.exceptions import CallbackException, PreventUpdate

    server: Flask = app.server
    endpoint = app.config.routes_pathname_prefix + "_dash-update-component"
    dispatch = server.view_functions[endpoint]

    @functools.wraps(dispatch)
    def checked_dispatch(*args, **kwargs):
        if not request.is_json:
            raise CallbackRequestError("回调请求须为 JSON", "a callback request must be JSON",
                                       code="unsupported_media_type", http_status=415)
        body = request.get_json(silent=True)  # a body over MAX_CONTENT_LENGTH still raises 413
        output = check_envelope(body, app.callback_map)
        try:
            return dispatch(*args, **kwargs)
        except (PreventUpdate, HTTPException, BilingualError, DataError, OperationalError, InterfaceError):
            raise  # each has its own handler
        except (*_INPUT_FAULTS, CallbackException) as exc:
            # Logged with the traceback: a callback bug looks the same from here.
            log.warning("callback %s refused its input (%s: %s)", output[:120], type(exc).__name__, str(exc)[:200],
                        exc_info=True)
            raise CallbackRequestError("回调输入无效", "invalid callback input", code="bad_callback_input") from exc

    server.view_functions[endpoint] = checked_dispatch
