"""网格通: the grid worker's phone app — an HTML shell, its static files and service worker.

Not a Dash page: Dash's bundle is ~1 MiB compressed and needs the server for every
interaction, so it could neither load fast on a village 3G link nor work offline.
This is a small page of the same Flask server, same login and session, written in
plain JavaScript (map_app/static/field/, map_app/static/common/) on Leaflet from
Debian's libjs-leaflet, talking to the JSON API of map_app/field_api.py.

Routes (all behind the login guard of map_app/auth.py):

* ``GET /field`` — the app shell (``Cache-Control: no-cache``; the service worker
  keeps a copy for offline use);
* ``GET /sw.js`` — the service worker, scope ``/field`` (``Service-Worker-Allowed: /``);
  its text carries a version made of every precached file's hash, so a changed file
  installs a new worker;
* ``GET /field/manifest.webmanifest`` — the PWA manifest;
* ``GET /field/static/<path>`` and ``GET /field/vendor/leaflet/<path>`` — files, long
  cached when asked for with their ``?v=<hash>``.

Files are kept in memory with their hash (re-read when their mtime changes), so the
responses are plain bytes that flask-compress can compress.
"""
from __future__ import annotations

import hashlib
import html
import json
from pathlib import Path

from flask import Blueprint, Response, abort, redirect, request
from flask_login import current_user

STATIC = Path(__file__).resolve().parent / "static"
LEAFLET = Path("/usr/share/javascript/leaflet")
LONG_CACHE = "public, max-age=31536000, immutable"
TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".png": "image/png",
         ".json": "application/json", ".webmanifest": "application/manifest+json", ".svg": "image/svg+xml"}
# What the service worker stores at install: the shell and everything it loads.
SHELL_FILES = ("static/common/photo.js", "static/common/outbox.js", "static/field/app.js", "static/field/field.css",
               "vendor/leaflet/leaflet.min.js", "vendor/leaflet/leaflet.css", "static/field/icon-192.png",
               "static/field/icon-512.png")

blueprint = Blueprint("field_page", __name__)
_files: dict[Path, tuple[float, bytes, str]] = {}


def _source(rel: str) -> Path | None:
    """The file behind a URL path below /field/ (static/… or vendor/leaflet/…), or None."""
    if rel.startswith("vendor/leaflet/"):
        base, name = LEAFLET, rel[len("vendor/leaflet/"):]
    elif rel.startswith("static/"):
        base, name = STATIC, rel[len("static/"):]
        if not name.startswith(("field/", "common/")):
            return None
    else:
        return None
    path = (base / name).resolve()
    if base.resolve() not in path.parents or not path.is_file():
        return None  # no escaping the folder (../)
    return path


def _load(path: Path) -> tuple[bytes, str]:
    """The file's bytes and a short content hash, re-read when the file changed."""
    mtime = path.stat().st_mtime
    cached = _files.get(path)
    if cached is None or cached[0] != mtime:
        data = path.read_bytes()
        cached = _files[path] = (mtime, data, hashlib.sha256(data).hexdigest()[:12])
    return cached[1], cached[2]


def asset_url(rel: str) -> str:
    """The versioned URL of a file below /field/ (``static/field/app.js`` → ``/field/static/…?v=hash``)."""
    path = _source(rel)
    if path is None:
        raise FileNotFoundError(rel)
    return f"/field/{rel}?v={_load(path)[1]}"


def _version() -> str:
    digest = hashlib.sha256()
    for rel in SHELL_FILES:
        digest.update(asset_url(rel).encode())
    digest.update(_shell_template().encode())
    return digest.hexdigest()[:12]


def _shell_template() -> str:
    return (STATIC / "field" / "shell.html").read_text(encoding="utf-8")


def _lang() -> str:
    from map_app.layout import LANG_COOKIE

    chosen = request.args.get("lang") or request.cookies.get(LANG_COOKIE)
    return "en" if chosen == "en" else "zh"


@blueprint.get("/field")
@blueprint.get("/field/")
def shell():
    if not current_user.is_authenticated:  # the guard lets no one through; kept for clarity
        return redirect("/login?next=/field")
    from map_app.auth import csrf_token

    lang = _lang()
    body = _shell_template()
    for rel in SHELL_FILES:
        body = body.replace("{{" + rel + "}}", asset_url(rel))
    body = (body.replace("{{lang}}", "en" if lang == "en" else "zh-CN")
            .replace("{{lang_code}}", lang)
            .replace("{{csrf}}", html.escape(csrf_token()))
            .replace("{{manifest}}", "/field/manifest.webmanifest")
            .replace("{{version}}", _version()))
    response = Response(body, mimetype="text/html")
    # Always revalidated: a new version of the app reaches the phone at its next visit.
    response.headers["Cache-Control"] = "no-cache, private"
    return response


@blueprint.get("/sw.js")
def service_worker():
    shell_urls = ["/field"] + [asset_url(rel) for rel in SHELL_FILES] + ["/field/manifest.webmanifest"]
    text = (STATIC / "field" / "sw.js").read_text(encoding="utf-8")
    text = text.replace("'__VERSION__'", json.dumps(_version())).replace("'__PRECACHE__'", json.dumps(shell_urls))
    response = Response(text, mimetype="text/javascript")
    response.headers["Cache-Control"] = "no-cache"
    response.headers["Service-Worker-Allowed"] = "/"
    return response


@blueprint.get("/field/manifest.webmanifest")
def manifest():
    data = {
        "name": "数字乡村·网格通", "short_name": "网格通", "lang": "zh-CN",
        "description": "网格员手机端:任务、上报、巡查 / Grid worker's app: tasks, reports, patrols",
        "start_url": "/field", "scope": "/field", "display": "standalone",
        "background_color": "#ffffff", "theme_color": "#12355b",
        "icons": [{"src": asset_url(f"static/field/icon-{n}.png"), "sizes": f"{n}x{n}", "type": "image/png",
                   "purpose": "any maskable"} for n in (192, 512)],
    }
    response = Response(json.dumps(data, ensure_ascii=False), mimetype="application/manifest+json")
    response.headers["Cache-Control"] = "no-cache"
    return response


@blueprint.get("/field/<path:rel>")
def static_file(rel: str):
    path = _source(rel)
    if path is None:
        abort(404)
    data, digest = _load(path)
    response = Response(data, mimetype=TYPES.get(path.suffix, "application/octet-stream"))
    response.headers["Cache-Control"] = LONG_CACHE if request.args.get("v") == digest else "no-cache"
    response.set_etag(digest)
    return response.make_conditional(request)


def init_field_page(server) -> None:
    """Register the field app's routes on the Flask ``server``."""
    if blueprint.name not in server.blueprints:
        server.register_blueprint(blueprint)
