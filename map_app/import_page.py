"""Data in and out for people: the administrators' upload page and scoped export downloads.

* ``/admin/import/`` — administrators upload a file (progress bar while it uploads and
  while it is read), choose the target and options, and read the report; earlier reports
  are listed and open at ``/admin/import/reports/<id>``.
* ``/export/<layer>.<fmt>`` and ``/export/village/<code>.<gpkg|html>`` — any logged-in
  user downloads what their scope lets them see (RLS through ``Database.session()``).

Register with :func:`init_import_page`. Imports run in a background thread with the
uploader's scope; their progress is kept in small JSON files under
``DVMAP_DATA_DIR/import-jobs`` so that any gunicorn worker can answer the polling.
"""
from __future__ import annotations

import html
import json
import logging
import os
import re
import secrets
import shutil
import tempfile
import threading
import time
from pathlib import Path

from flask import Blueprint, Flask, abort, after_this_request, current_app, jsonify, request, send_file
from flask_login import current_user

from etl.export import FORMATS, MEDIA_TYPES, ExportError, export_layer, export_village
from etl.importers import ALL_TARGETS, ImportOptions, Limits, get_report, import_file, recent_reports
from geodata.clock import fmt_local
from geodata.config import METRIC_SRID, get_settings
from map_app.auth import _check_csrf, csrf_token

log = logging.getLogger(__name__)

import_bp = Blueprint("data_import", __name__, url_prefix="/admin/import")
export_bp = Blueprint("data_export", __name__, url_prefix="/export")

TARGET_LABELS = {
    "resources": ("公共资源", "Public resources"), "custom": ("新的自定义图层", "New custom layer"),
    "villages": ("行政村", "Villages"), "grids": ("网格", "Grids"), "population": ("人口", "Population"),
    "sensors": ("感知设备", "Sensors"), "raster": ("栅格(GeoTIFF)", "Raster (GeoTIFF)"),
}
_JOB_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


def init_import_page(app, admin_roles: tuple[str, ...] = ("admin",)) -> None:
    """Register the upload page (``/admin/import/``) and the export downloads (``/export/``).

    Parameters
    ----------
    app : dash.Dash or flask.Flask
    admin_roles : tuple of str
        Roles allowed to import.
    """
    server: Flask = getattr(app, "server", app)
    server.config["DVMAP_IMPORT_ROLES"] = tuple(admin_roles)
    for bp in (import_bp, export_bp):
        if bp.name not in server.blueprints:
            server.register_blueprint(bp)


def _lang() -> str:
    return "en" if request.args.get("lang") == "en" else "zh"


def _t(zh: str, en: str) -> str:
    return f"{zh} <span class=en>{en}</span>"


def _require_admin() -> None:
    roles = current_app.config.get("DVMAP_IMPORT_ROLES", ("admin",))
    if not current_user or not current_user.is_authenticated or current_user.role not in roles:
        abort(403)


def _jobs_dir() -> Path:
    path = get_settings().data_dir / "import-jobs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _write_job(job: str, data: dict) -> None:
    path = _jobs_dir() / f"{job}.json"
    tmp = path.with_suffix(f".{secrets.token_hex(4)}.tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False, default=str), encoding="utf-8")
    os.replace(tmp, path)


def _read_job(job: str) -> dict | None:
    path = _jobs_dir() / f"{job}.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _prune_jobs(max_age_s: float = 86400) -> None:
    now = time.time()
    for f in _jobs_dir().glob("*.json"):
        try:
            if now - f.stat().st_mtime > max_age_s:
                f.unlink()
        except OSError:
            pass


@import_bp.before_request
def _guard():
    _require_admin()
    # uploads may be bigger than the app-wide request limit (Flask >= 3.1)
    try:
        request.max_content_length = Limits().max_file_bytes + (1 << 20)
    except AttributeError:  # pragma: no cover - older Flask
        pass


PAGE = """<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1"><title>数据导入 · Data import</title>
<style>
body{{font-family:"Noto Sans CJK SC","WenQuanYi Micro Hei",system-ui,sans-serif;margin:24px;color:#1f2937;max-width:1100px}}
.en{{color:#64748b;font-size:.9em}} fieldset{{border:1px solid #e5e7eb;border-radius:8px;margin:14px 0;padding:12px 16px}}
label{{display:inline-block;margin:6px 14px 6px 0}} input[type=text]{{padding:4px 6px}}
table{{border-collapse:collapse;font-size:14px;width:100%}} td,th{{border-bottom:1px solid #e5e7eb;padding:5px 8px;text-align:left;vertical-align:top}}
progress{{width:420px;height:18px}} .st-imported{{color:#166534}} .st-refused,.st-failed{{color:#991b1b}} .st-already_imported{{color:#92400e}}
button{{padding:6px 16px;border:0;border-radius:6px;background:#12355b;color:#fff;cursor:pointer}}
#result{{margin:10px 0;padding:10px;border-radius:6px;background:#f8fafc;white-space:pre-wrap}} a{{color:#12355b}}
</style></head><body>
<p><a href="/">← 返回地图 <span class=en>Back to the map</span></a></p>
<h1>数据导入 <span class=en>Data import</span></h1>
<form id="upload" method="post" action="upload" enctype="multipart/form-data">
<input type="hidden" name="csrf" value="{csrf}">
<fieldset><legend>{l_file}</legend>
<input type="file" name="file" required accept=".zip,.gpkg,.geojson,.json,.csv,.xlsx,.tif,.tiff">
<div class=en>压缩的 Shapefile(.zip)、GeoPackage、GeoJSON、CSV/XLSX(经纬度列)、GeoTIFF ·
zipped Shapefile, GeoPackage, GeoJSON, CSV/XLSX with lon/lat columns, GeoTIFF</div></fieldset>
<fieldset><legend>{l_target}</legend>{targets}
<div><label>{l_name} <input type="text" name="layer_name" placeholder="wells" pattern="[a-z][a-z0-9_]{{1,39}}"></label>
<label>{l_title} <input type="text" name="title_zh" placeholder="水井"></label>
<label><input type="text" name="title_en" placeholder="Wells"></label>
<label>{l_source} <input type="text" name="source" placeholder="卫健局-卫生室"></label></div></fieldset>
<fieldset><legend>{l_options}</legend>
<label>{l_layer} <input type="text" name="layer" size="14"></label>
<label>{l_crs} <input type="text" name="crs" size="12" placeholder="EPSG:{metric_srid}"></label>
<label>{l_datum} <select name="datum"><option value="">CGCS2000 / WGS84</option><option value="gcj02">GCJ-02 (高德/腾讯)</option>
<option value="bd09">BD-09 (百度)</option></select></label>
<label>{l_encoding} <input type="text" name="encoding" size="8" placeholder="GBK"></label>
<label>{l_type} <input type="text" name="resource_type" size="12" placeholder="clinic"></label>
<label><input type="checkbox" name="swap_axes" value="1"> {l_swap}</label>
<label><input type="checkbox" name="strict" value="1"> {l_strict}</label></fieldset>
<button type="submit">{l_submit}</button>
</form>
<div id="progress" hidden><div id="stage"></div><progress id="bar" max="100" value="0"></progress> <span id="pct"></span></div>
<div id="result" hidden role="status"></div>
<h2>最近的导入 <span class=en>Recent imports</span></h2>
<table><thead><tr><th>#</th><th>{l_time}</th><th>{l_file}</th><th>{l_target}</th><th>{l_status}</th><th>{l_counts}</th></tr></thead>
<tbody id="recent">{rows}</tbody></table>
<script>
const form = document.getElementById('upload');
const bar = document.getElementById('bar'), pct = document.getElementById('pct'), stage = document.getElementById('stage');
const result = document.getElementById('result');
const STAGES = {{hash: '计算文件摘要 hashing', read: '读取要素 reading', validate: '校验 validating',
                merge: '写入 writing', done: '完成 done', queued: '排队 queued'}};
function show(p, label) {{ bar.value = p; pct.textContent = p.toFixed(0) + '%'; stage.textContent = label; }}
function poll(job) {{
  fetch('jobs/' + job).then(r => r.json()).then(j => {{
    if (j.total) show(100 * j.done / j.total, STAGES[j.stage] || j.stage); else show(j.stage === 'done' ? 100 : 0, STAGES[j.stage] || j.stage);
    if (j.finished) {{
      result.hidden = false; result.className = 'st-' + j.status;
      result.innerHTML = '';
      const pre = document.createElement('div'); pre.textContent = (j.lines || []).join('\\n'); result.appendChild(pre);
      if (j.report_id) {{ const a = document.createElement('a'); a.href = 'reports/' + j.report_id;
        a.textContent = '查看完整报告 Full report #' + j.report_id; result.appendChild(a); }}
      form.querySelector('button').disabled = false;
      // The finished import heads the list at once (it used to show only after the next one).
      fetch('recent').then(r => r.ok ? r.text() : null).then(t => {{ if (t !== null) document.getElementById('recent').innerHTML = t; }});
    }} else setTimeout(() => poll(job), 500);
  }}).catch(() => setTimeout(() => poll(job), 1500));
}}
form.addEventListener('submit', ev => {{
  ev.preventDefault();
  const xhr = new XMLHttpRequest();
  document.getElementById('progress').hidden = false; result.hidden = true;
  form.querySelector('button').disabled = true;
  xhr.upload.onprogress = e => {{ if (e.lengthComputable) show(100 * e.loaded / e.total, '上传 uploading'); }};
  xhr.onload = () => {{
    let body = {{}}; try {{ body = JSON.parse(xhr.responseText); }} catch (e) {{}}
    if (xhr.status === 202 && body.job) poll(body.job);
    else {{ result.hidden = false; result.className = 'st-refused';
           result.textContent = body.error || ('HTTP ' + xhr.status); form.querySelector('button').disabled = false; }}
  }};
  xhr.onerror = () => {{ result.hidden = false; result.textContent = '上传失败 Upload failed'; form.querySelector('button').disabled = false; }};
  xhr.open('POST', 'upload'); xhr.send(new FormData(form));
}});
</script></body></html>"""


def _report_row(r) -> str:
    esc = html.escape
    counts = f"{r.rows_read} / {r.rows_imported} / {r.rows_repaired} / {r.rows_flagged} / {r.rows_rejected}"
    return (f"<tr><td><a href='reports/{r.id}'>{r.id}</a></td><td>{esc(fmt_local(r.started_at, '%Y-%m-%d %H:%M:%S'))}</td>"
            f"<td>{esc(r.file_name)}</td><td>{esc(r.target)}{(':' + esc(r.layer)) if r.layer else ''}</td>"
            f"<td class='st-{esc(r.status)}'>{esc(r.status)}</td><td>{counts}</td></tr>")


@import_bp.get("/")
def page():
    database = current_app.extensions["dvmap"]
    with database.session() as s:
        reports = recent_reports(s, 20)
    targets = "".join(
        f'<label><input type="radio" name="target" value="{t}" {"checked" if t == "resources" else ""}> '
        f"{TARGET_LABELS[t][0]} <span class=en>{TARGET_LABELS[t][1]}</span></label>" for t in ALL_TARGETS)
    body = PAGE.format(
        csrf=html.escape(csrf_token()), targets=targets, rows="".join(_report_row(r) for r in reports),
        metric_srid=METRIC_SRID,
        l_file=_t("文件", "File"), l_target=_t("导入到", "Import into"), l_name=_t("图层名", "Layer name"),
        l_title=_t("标题", "Title"), l_source=_t("数据来源", "Source"), l_options=_t("选项", "Options"),
        l_layer=_t("图层/工作表", "Layer/sheet"), l_crs=_t("坐标系", "CRS"), l_datum=_t("坐标基准", "Datum"),
        l_encoding=_t("编码", "Encoding"), l_type=_t("资源类型", "Resource type"),
        l_swap=_t("交换经纬度", "Swap axes"), l_strict=_t("严格(有错则全部不导入)", "Strict (all or nothing)"),
        l_submit="上传并导入 Upload and import", l_time=_t("时间", "Time"), l_status=_t("结果", "Result"),
        l_counts=_t("读取/导入/修复/标记/拒绝", "read/imported/repaired/flagged/rejected"))
    return body, 200, {"Content-Type": "text/html; charset=utf-8"}


@import_bp.get("/recent")
def recent():
    """The rows of the recent-imports table, refreshed by the page when an import finishes."""
    database = current_app.extensions["dvmap"]
    with database.session() as s:
        reports = recent_reports(s, 20)
    return "".join(_report_row(r) for r in reports), 200, {"Content-Type": "text/html; charset=utf-8"}


def _form_options(form, file_name: str, username: str) -> tuple[str, ImportOptions]:
    target = form.get("target", "resources")
    if target not in ALL_TARGETS:
        raise ValueError(f"未知的导入目标:{target[:40]} / unknown import target: {target[:40]}")

    def opt(name):
        value = (form.get(name) or "").strip()
        return value or None

    return target, ImportOptions(
        layer=opt("layer"), layer_name=opt("layer_name"), title_zh=opt("title_zh"), title_en=opt("title_en"),
        source=opt("source"), crs=opt("crs"), datum=opt("datum"), swap_axes=form.get("swap_axes") == "1",
        encoding=opt("encoding"), resource_type=opt("resource_type"), strict=form.get("strict") == "1",
        file_name=file_name, created_by=username)


@import_bp.post("/upload")
def upload():
    _check_csrf()
    upload_file = request.files.get("file")
    if upload_file is None or not upload_file.filename:
        return jsonify(error="请选择文件 / Choose a file"), 400
    name = Path(upload_file.filename.replace("\\", "/")).name[:200] or "upload"
    username = current_user.user.username if hasattr(current_user, "user") else "admin"
    try:
        target, options = _form_options(request.form, name, username)
    except ValueError as exc:
        return jsonify(error=str(exc)), 400
    workdir = Path(tempfile.mkdtemp(prefix="dvmap-upload-"))
    suffix = "".join(Path(name).suffixes[-1:]).lower()
    path = workdir / f"upload{suffix if re.fullmatch(r'[.][a-z0-9]{1,8}', suffix or '') else ''}"
    try:
        upload_file.save(path)
    except Exception:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    options.work_dir = workdir
    database = current_app.extensions["dvmap"]
    scope = database.scope_provider()  # the uploader's scope, taken now, in the request
    job = secrets.token_urlsafe(18)
    _prune_jobs()
    _write_job(job, {"stage": "queued", "done": 0, "total": None, "finished": False})
    thread = threading.Thread(target=_run_job, args=(job, path, workdir, target, options, database, scope),
                              name=f"dvmap-import-{job[:6]}", daemon=True)
    thread.start()
    return jsonify(job=job), 202


def _run_job(job, path, workdir, target, options, database, scope) -> None:
    state = {"stage": "hash", "done": 0, "total": None, "finished": False}
    last = [0.0]

    def progress(stage, done, total):
        state.update(stage=stage, done=done, total=total)
        now = time.monotonic()
        if now - last[0] > 0.3 or stage in ("merge", "done"):
            last[0] = now
            _write_job(job, state)

    try:
        report = import_file(path, target, database.engine, scope=scope, options=options, progress=progress)
        state.update(finished=True, status=report.status, report_id=report.id or report.duplicate_of,
                     lines=report.lines("zh", max_issues=20) + [""] + report.lines("en", max_issues=0))
    except Exception as exc:  # noqa: BLE001 - shown to the administrator, logged in full
        log.exception("import job %s failed", job)
        state.update(finished=True, status="failed", lines=[f"导入失败 Import failed: {type(exc).__name__}"])
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        _write_job(job, state)


@import_bp.get("/jobs/<job>")
def job_status(job: str):
    if not _JOB_ID.match(job):
        abort(404)
    data = _read_job(job)
    if data is None:
        abort(404)
    return jsonify(data)


REPORT_PAGE = """<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><title>导入报告 #{id}</title>
<style>body{{font-family:"Noto Sans CJK SC","WenQuanYi Micro Hei",system-ui,sans-serif;margin:24px;color:#1f2937;max-width:1100px}}
table{{border-collapse:collapse;font-size:14px;width:100%}}td,th{{border-bottom:1px solid #e5e7eb;padding:5px 8px;text-align:left;vertical-align:top}}
.k-rejected{{color:#991b1b}}.k-repaired{{color:#92400e}}.k-flagged{{color:#1d4ed8}}.en{{color:#64748b}}</style></head><body>
<p><a href="../">← 数据导入 <span class=en>Data import</span></a></p>
<h1>导入报告 #{id} <span class=en>Import report</span></h1>
<p>{summary_zh}<br><span class=en>{summary_en}</span></p>{message}
<table><tbody>{facts}</tbody></table>
<h2>逐要素 <span class=en>Per feature</span> ({n_issues}{more})</h2>
<table><thead><tr><th>行 Row</th><th>编号 Id</th><th>类别 Kind</th><th>说明</th><th class=en>Explanation</th></tr></thead>
<tbody>{issues}</tbody></table></body></html>"""


@import_bp.get("/reports/<int:report_id>")
def report_page(report_id: int):
    database = current_app.extensions["dvmap"]
    with database.session() as s:
        report = get_report(s, report_id)
    if report is None:
        abort(404)
    esc = html.escape
    facts = [("文件 File", report.file_name), ("SHA-256", report.file_sha256), ("格式 Format", report.format),
             ("编码 Encoding", f"{report.encoding or ''} ({report.encoding_source or ''})"),
             ("坐标系 CRS", report.source_crs), ("已转换 Converted from", report.converted_from),
             ("计数 Counts", json.dumps(report.counts, ensure_ascii=False)), ("导入人 By", report.created_by),
             ("时间 Time", fmt_local(report.started_at, "%Y-%m-%d %H:%M:%S"))]
    facts_html = "".join(f"<tr><th>{esc(k)}</th><td>{esc(str(v))}</td></tr>" for k, v in facts if v)
    notes = "".join(f"<li>{esc(n.message_zh)} <span class=en>{esc(n.message_en)}</span></li>" for n in report.notes)
    message = ""
    if report.message_zh:
        message = f"<p class=k-rejected><b>{esc(report.message_zh)}</b><br><span class=en>{esc(report.message_en)}</span></p>"
    if notes:
        message += f"<ul>{notes}</ul>"
    issues = "".join(
        f"<tr class='k-{esc(i.kind)}'><td>{i.row or ''}</td><td>{esc(i.fid or '')}</td><td>{esc(i.kind)}</td>"
        f"<td>{esc(i.message_zh)}</td><td class=en>{esc(i.message_en)}</td></tr>" for i in report.issues)
    body = REPORT_PAGE.format(id=report.id, summary_zh=esc(report.summary("zh")), summary_en=esc(report.summary("en")),
                              message=message, facts=facts_html, issues=issues, n_issues=len(report.issues),
                              more=" …" if report.issues_truncated else "")
    return body, 200, {"Content-Type": "text/html; charset=utf-8"}


# -- exports ------------------------------------------------------------------------------------------
def _send(path: Path, workdir: Path, download_name: str, media: str):
    @after_this_request
    def _cleanup(response):
        shutil.rmtree(workdir, ignore_errors=True)
        return response

    return send_file(path, mimetype=media, as_attachment=True, download_name=download_name, max_age=0)


@export_bp.before_request
def _export_guard():
    scope = current_app.extensions["dvmap"].scope_provider()
    if scope is None or scope.role == "anonymous":
        abort(401)


@export_bp.get("/<layer>.<fmt>")
def export_one(layer: str, fmt: str):
    if fmt not in FORMATS:
        abort(404)
    return _export(f"{layer}{FORMATS[fmt]}", fmt, lambda s, out: export_layer(s, layer, fmt, out))


@export_bp.get("/village/<code>.<fmt>")
def export_village_file(code: str, fmt: str):
    if fmt not in ("gpkg", "html") or not re.fullmatch(r"[0-9]{12}", code):
        abort(404)
    return _export(f"{code}.{fmt}", fmt, lambda s, out: export_village(s, code, fmt, out))


def _export(filename: str, fmt: str, write):
    """Write a file with the request's scoped session into a temporary folder and send it."""
    database = current_app.extensions["dvmap"]
    workdir = Path(tempfile.mkdtemp(prefix="dvmap-export-"))
    out = workdir / filename
    try:
        with database.session() as s:
            write(s, out)
    except ExportError as exc:
        shutil.rmtree(workdir, ignore_errors=True)
        return jsonify(error=str(exc)), 404
    except Exception:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    return _send(out, workdir, out.name, MEDIA_TYPES[fmt])


__all__ = ["init_import_page", "import_bp", "export_bp"]
