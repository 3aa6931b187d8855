"""The import pipeline: read → check → stage → validate → merge, all or nothing, once per file.

:func:`run_import` works on a connection the caller owns: everything it writes to the
data tables happens inside one transaction (or savepoint, when the caller already has a
transaction), together with the ``import_report`` row of a successful import. A refusal
rolls all of it back and saves a report saying why. :func:`import_file` is the same with
a connection of its own, committed at the end (CLI, upload page).

Imports are idempotent by the file's SHA-256: the same file into the same target (and
layer/source) a second time is answered "already imported", pointing at the first
report. A partial unique index makes that hold even for two imports racing.
"""
from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import shapely
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError

from etl.importers import crs as crsmod
from etl.importers.archive import Limits
from etl.importers.errors import ImportRejected, message
from etl.importers.geometry import budget_reject, check_geometry, family, finite, precheck
from etl.importers.raster import describe, inspect_raster, store_raster
from etl.importers.readers import Feature, Source, locate, open_vector
from etl.importers.report import Issue, ImportReport
from etl.importers.targets import (LAYER_NAME, RESERVED_LAYER_NAMES, TARGETS, FeatureReject, Target,
                                   resolve_fields)
from geodata.config import STORAGE_SRID, get_settings
from geodata.db import SYSTEM, Scope, apply_scope

log = logging.getLogger(__name__)

ALL_TARGETS = tuple(TARGETS) + ("raster",)
SAMPLE = 2000
Progress = Callable[[str, int, "int | None"], None]


@dataclass
class ImportOptions:
    """Choices of the person importing.

    Parameters
    ----------
    layer : str, optional
        Which layer: a Shapefile in a ZIP, a GeoPackage layer or an XLSX sheet.
    layer_name, title_zh, title_en : str, optional
        Name and titles of the custom layer or raster dataset created or replaced.
    source : str, optional
        Resources: the dataset's name (e.g. ``卫健局-卫生室``); a re-import of the same
        source replaces its rows. Defaults to the file name without extension.
    crs : str, optional
        The CRS when the file has none or declares it wrongly (``EPSG:4549``, WKT...);
        ``gcj02``/``bd09`` are shorthands for data in those datums.
    datum : {'gcj02', 'bd09'}, optional
        The data is in GCJ-02 or BD-09: converted to CGCS2000 and marked converted.
    swap_axes : bool
        The person confirmed that x and y (lon and lat) are swapped in the file.
    encoding : str, optional
        The attribute text encoding, when neither .cpg nor detection will do.
    resource_type, sensor_type : str, optional
        One type for every feature, when the file has no type column.
    year : int, optional
        Population: the year, when the table has no year column.
    field_map : dict, optional
        ``{logical: column}`` (logical: name, code, type, capacity, address, year, total,
        age_60_plus, households, status, id).
    strict : bool
        Refuse the whole file when any feature is rejected.
    file_name : str, optional
        The name to report (uploads are saved under temporary names).
    created_by : str, optional
        Who imported (user name), for the report.
    work_dir, raster_dir : Path, optional
        Where temporary files go, and where GeoTIFFs are kept.
    """

    layer: str | None = None
    layer_name: str | None = None
    title_zh: str | None = None
    title_en: str | None = None
    source: str | None = None
    crs: str | None = None
    datum: str | None = None
    swap_axes: bool = False
    encoding: str | None = None
    resource_type: str | None = None
    sensor_type: str | None = None
    year: int | None = None
    field_map: dict = field(default_factory=dict)
    strict: bool = False
    file_name: str | None = None
    created_by: str | None = None
    work_dir: Path | None = None
    raster_dir: Path | None = None

    def public(self) -> dict:
        """The options worth saving with the report."""
        skip = {"work_dir", "raster_dir", "file_name", "created_by"}
        return {k: v for k, v in asdict(self).items() if k not in skip and v not in (None, False, {}, "")}


def file_digest(path: Path) -> tuple[str, int]:
    """SHA-256 (hex) and size of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while True:
            chunk = fh.read(1 << 20)
            if not chunk:
                break
            size += len(chunk)
            h.update(chunk)
    return h.hexdigest(), size


# -- reports in the database ----------------------------------------------------------------
_REPORT_COLS = ("file_sha256", "file_name", "file_size", "format", "target", "layer", "status", "reason_code",
                "message_zh", "message_en", "encoding", "encoding_source", "source_crs", "converted_from",
                "rows_read", "rows_imported", "rows_repaired", "rows_rejected", "rows_flagged", "counts",
                "issues", "issues_truncated", "notes", "options", "village_id", "user_id", "created_by",
                "duplicate_of")
_JSON_COLS = {"counts", "issues", "notes", "options"}


def _report_params(report: ImportReport, scope: Scope, options: ImportOptions) -> dict:
    data = report.to_dict()
    village = None
    if scope.village_ids is not None and len(scope.village_ids) == 1:
        village = next(iter(scope.village_ids))
    report.created_by = options.created_by or report.created_by or scope.role
    data.update(village_id=village, user_id=scope.user_id, created_by=report.created_by, options=options.public())
    out = {}
    for col in _REPORT_COLS:
        value = data.get(col)
        out[col] = json.dumps(value, ensure_ascii=False, default=str) if col in _JSON_COLS else value
    return out


def _insert_report(conn, report: ImportReport, scope: Scope, options: ImportOptions) -> int:
    params = _report_params(report, scope, options)
    cols = ", ".join(_REPORT_COLS)
    vals = ", ".join(f"CAST(:{c} AS jsonb)" if c in _JSON_COLS else f":{c}" for c in _REPORT_COLS)
    return conn.execute(text(f"INSERT INTO import_report ({cols}, finished_at) VALUES ({vals}, clock_timestamp())"
                             " RETURNING id"), params).scalar_one()


def _update_report(conn, report: ImportReport, scope: Scope, options: ImportOptions) -> None:
    params = _report_params(report, scope, options)
    sets = ", ".join(f"{c} = CAST(:{c} AS jsonb)" if c in _JSON_COLS else f"{c} = :{c}" for c in _REPORT_COLS)
    conn.execute(text(f"UPDATE import_report SET {sets}, finished_at = clock_timestamp() WHERE id = :id"),
                 {**params, "id": report.id})


def _previous_import(conn, sha: str, target: str, layer: str) -> int | None:
    return conn.execute(text("""
        SELECT id FROM import_report
         WHERE file_sha256 = :sha AND target = :target AND layer = :layer AND status = 'imported'
         ORDER BY id LIMIT 1
    """), {"sha": sha, "target": target, "layer": layer}).scalar()


def get_report(conn, report_id: int) -> ImportReport | None:
    """Load a saved report (RLS decides whether the caller may see it).

    Parameters
    ----------
    conn : sqlalchemy.engine.Connection or sqlalchemy.orm.Session
        A connection/session with the caller's scope applied.
    report_id : int

    Returns
    -------
    ImportReport or None
    """
    row = conn.execute(text("SELECT * FROM import_report WHERE id = :id"), {"id": report_id}).mappings().first()
    return ImportReport.from_row(row) if row else None


def recent_reports(conn, limit: int = 20) -> list[ImportReport]:
    """The latest reports the caller may see, newest first."""
    rows = conn.execute(text("SELECT * FROM import_report ORDER BY id DESC LIMIT :n"), {"n": limit}).mappings()
    return [ImportReport.from_row(r) for r in rows]


# -- the pipeline ----------------------------------------------------------------------------------
def _region(conn) -> crsmod.Region:
    row = conn.execute(text(
        "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (SELECT ST_Extent(geom) e FROM county) x"
    )).one()
    if row[0] is None:
        return crsmod.Region.china()
    return crsmod.Region((row[0], row[1], row[2], row[3]))


def _reference(conn) -> dict:
    return {
        "resource_types": {r[0]: (r[1], r[2]) for r in conn.execute(
            text("SELECT code, name_zh, name_en FROM resource_type ORDER BY sort"))},
        "sensor_types": {r[0]: (r[1], r[2]) for r in conn.execute(
            text("SELECT code, name_zh, name_en FROM sensor_type ORDER BY sort"))},
    }


_STAGING_DDL = f"""
    DROP TABLE IF EXISTS import_staging;
    CREATE TEMP TABLE import_staging (
        row_no        integer PRIMARY KEY,
        fid           text,
        key           text,
        name          text,
        geom          geometry(Geometry, {STORAGE_SRID}),
        props         jsonb NOT NULL DEFAULT '{{}}'::jsonb,
        cols          jsonb NOT NULL DEFAULT '{{}}'::jsonb,
        village_id    integer,
        flag_code     text,
        reject_code   text,
        reject_detail jsonb
    ) ON COMMIT DROP;
"""


class _Stager:
    """Buffers staging rows and writes them with COPY in batches."""

    def __init__(self, conn, batch: int = 2000):
        self.conn = conn
        self.rows: list[tuple] = []
        self.batch = batch
        self.count = 0

    def add(self, row: tuple) -> None:
        self.rows.append(row)
        if len(self.rows) >= self.batch:
            self.flush()

    def flush(self) -> None:
        if not self.rows:
            return
        raw = self.conn.connection.dbapi_connection
        with raw.cursor() as cur:
            with cur.copy("COPY import_staging (row_no, fid, key, name, geom, props, cols) FROM STDIN") as cp:
                for row in self.rows:
                    cp.write_row(row)
        self.count += len(self.rows)
        self.rows = []


def _safe_json(value) -> str:
    return json.dumps(value, ensure_ascii=False, default=str, allow_nan=False)


class _Run:
    """State of one vector import while it runs."""

    def __init__(self, report: ImportReport, progress: Progress | None, total: int | None):
        self.report = report
        self.progress = progress
        self.total = total
        self.rejected: set[int] = set()
        self.repairs: dict[int, Issue] = {}
        self.repaired_rows: set[int] = set()
        self.flags: dict[int, Issue] = {}       # flagged in Python (a repair that changed the area)
        self.seen: dict[str, int] = {}
        self._last = 0.0

    def reject(self, f: Feature, code: str, detail: dict) -> None:
        self.rejected.add(f.row)
        self.report.add(Issue.make("rejected", code, f.row, f.fid, **detail))

    def tick(self, stage: str, done: int, force: bool = False) -> None:
        if self.progress is None:
            return
        now = time.monotonic()
        if force or now - self._last >= 0.2:
            self._last = now
            self.progress(stage, done, self.total)


def _majority_family(features: list[Feature]) -> tuple[str | None, bool]:
    fams = [family(f.geom) for f in features if f.error is None and precheck(f.geom) is None]
    fams = [x for x in fams if x]
    if not fams:
        return None, False
    counts = Counter(fams)
    return counts.most_common(1)[0][0], len(counts) > 1


def _feature_name(f: Feature, target: Target) -> str:
    """How the report names a feature: its name, else its id, else its row."""
    try:
        name = target.get(f.props, "name")
    except Exception:  # noqa: BLE001 - a name is only for the message
        name = None
    for value in (name, f.fid):
        if value not in (None, ""):
            return str(value)[:60]
    return f"#{f.row}"


def _stage_features(conn, src: Source, target: Target, plan: crsmod.CrsPlan | None, want: str | None,
                    run: _Run, head: list[list[Feature]], rest, limits: Limits) -> _Stager:
    stager = _Stager(conn)
    done = 0

    def batches():
        yield from head
        yield from rest

    for batch in batches():
        for f in batch:
            done += 1
            run.report.rows_read += 1
            if f.error is not None:
                run.reject(f, *f.error)
                continue
            geom = None
            if target.family is not None:
                pre = precheck(f.geom)
                if pre:
                    run.reject(f, *pre)
                    continue
                # The budget comes before any validity check: GEOS's check (and PostGIS's
                # CHECK constraint, which repeats it) is quadratic for some shapes.
                over = budget_reject(f.geom, _feature_name(f, target), limits.max_feature_vertices,
                                     limits.max_feature_seconds)
                if over:
                    run.reject(f, *over)
                    continue
                started = time.monotonic()
                geom = plan.apply(f.geom) if plan is not None else f.geom
                if not finite(geom):
                    run.reject(f, "non_finite", {})
                    continue
                checked = check_geometry(geom, want, target.single_point, target.promote_multi)
                if checked.reject:
                    run.reject(f, *checked.reject)
                    continue
                spent = time.monotonic() - started
                if spent > limits.max_feature_seconds:  # the estimate missed: do not pay for it again in SQL
                    run.reject(f, "too_slow", {"name": _feature_name(f, target), "seconds": round(spent, 1),
                                               "limit": limits.max_feature_seconds})
                    continue
                geom = checked.geom
            try:
                staged = target.stage(f.props)
            except FeatureReject as exc:
                run.reject(f, exc.code, exc.detail)
                continue
            if staged.key is not None:
                first = run.seen.get(staged.key)
                if first is not None:
                    run.reject(f, "duplicate_id", {"id": staged.key, "first": first})
                    continue
                run.seen[staged.key] = f.row
            if target.family is not None and checked.repair:
                run.repaired_rows.add(f.row)
                if len(run.repairs) < 2000:
                    run.repairs[f.row] = Issue.make("repaired", "repaired", f.row, f.fid, **checked.repair)
                for code, detail in checked.notes:
                    run.report.add(Issue.make("note", code, f.row, f.fid, **detail))
            if target.family is not None and checked.flag:
                run.flags[f.row] = Issue.make("flagged", checked.flag[0], f.row, f.fid, **checked.flag[1])
            ewkb = shapely.to_wkb(shapely.set_srid(geom, STORAGE_SRID), hex=True, include_srid=True) \
                if geom is not None else None
            try:
                props = _safe_json(f.props)
            except ValueError:
                props = _safe_json({k: (None if isinstance(v, float) else v) for k, v in f.props.items()})
            stager.add((f.row, f.fid, staged.key, staged.name, ewkb, props, _safe_json(staged.cols)))
            run.tick("read", done)
    stager.flush()
    run.tick("read", done, force=True)
    return stager


def _import_vector(conn, fmt: str, path: Path, layer: str | None, target_name: str, options: ImportOptions,
                   report: ImportReport, limits: Limits, progress: Progress | None, scope: Scope) -> int:
    """Everything between opening the dataset and the merge; returns the import's report id."""
    need_xy = target_name != "population"
    src = open_vector(fmt, path, layer, options.encoding, limits, need_xy=need_xy)
    report.format = fmt
    if src.encoding:
        report.encoding, report.encoding_source = src.encoding.encoding, src.encoding.source
        if src.encoding.note:
            report.note(src.encoding.note[0], **src.encoding.note[1])
    reference = _reference(conn)
    reference["fields"] = src.fields
    fields = resolve_fields(src.fields, options.field_map)
    target = TARGETS[target_name](fields, options, reference)

    # read a head sample to decide the CRS (and a custom layer's geometry family)
    it = src.features()
    head: list[list[Feature]] = []
    n_head = 0
    for batch in it:
        head.append(batch)
        n_head += len(batch)
        if n_head >= SAMPLE:
            break
    if n_head == 0:
        raise ImportRejected("no_features")
    flat = [f for b in head for f in b]

    plan = None
    want = target.family if target.family not in ("any",) else None
    if target.family is not None:
        if not src.has_geometry:
            raise ImportRejected("no_columns", columns=", ".join(src.fields[:30]))
        xy = crsmod.sample_coords([f.geom for f in flat if f.error is None and precheck(f.geom) is None])
        datum = options.datum or src.datum_hint
        plan = crsmod.plan(src.crs, options.crs, datum, xy, _region(conn), options.swap_axes)
        report.source_crs = plan.label + (" (assumed)" if plan.assumed else "")
        report.converted_from = plan.datum
        for code, detail in plan.notes:
            report.note(code, **detail)
        if target.family == "any":
            want, mixed = _majority_family(flat)
            if want is None:
                want = "point"
            reference["family"] = want
            if mixed:
                report.note("geometry_family_mixed", family=want)

    run = _Run(report, progress, src.count)
    conn.execute(text(_STAGING_DDL))
    _stage_features(conn, src, target, plan, want, run, head, it, limits)

    # -- validation in SQL -----------------------------------------------------------
    if progress:
        progress("validate", report.rows_read, src.count)
    county_loaded = conn.execute(text("SELECT EXISTS (SELECT 1 FROM county)")).scalar_one()
    if county_loaded and target.family is not None:
        conn.execute(text("""
            UPDATE import_staging s SET flag_code = 'outside_county'
             WHERE s.geom IS NOT NULL
               AND NOT EXISTS (SELECT 1 FROM county c WHERE ST_Intersects(c.geom, s.geom))
        """))
    target.validate(conn)
    staged, inside = conn.execute(text("""
        SELECT count(*), count(*) FILTER (WHERE flag_code IS NULL) FROM import_staging WHERE geom IS NOT NULL
    """)).one()
    if county_loaded and target.family is not None and staged > 0 and inside == 0:
        raise ImportRejected("nothing_in_county")

    for row_no, fid, code, detail in conn.execute(text(
            "SELECT row_no, fid, reject_code, reject_detail FROM import_staging WHERE reject_code IS NOT NULL"
            " ORDER BY row_no")):
        run.rejected.add(row_no)
        report.add(Issue.make("rejected", code, row_no, fid, **(detail or {})))
    flagged = conn.execute(text(
        "SELECT row_no, fid, flag_code FROM import_staging WHERE flag_code IS NOT NULL AND reject_code IS NULL"
        " ORDER BY row_no")).all()
    for row_no, fid, code in flagged:
        report.add(Issue.make("flagged", code, row_no, fid))
    for row_no, issue in run.flags.items():
        if row_no not in run.rejected:
            report.add(issue)
    for row_no, issue in run.repairs.items():
        if row_no not in run.rejected:
            report.add(issue)
    report.issues.sort(key=lambda i: (i.row or 0, ("rejected", "repaired", "flagged", "note").index(i.kind)
                                      if i.kind in ("rejected", "repaired", "flagged", "note") else 9))
    report.rows_rejected = len(run.rejected)
    report.rows_flagged = len({r[0] for r in flagged} | (set(run.flags) - run.rejected))
    report.rows_repaired = len(run.repaired_rows - run.rejected)
    report.rows_imported = report.rows_read - report.rows_rejected

    if report.rows_imported == 0:
        raise ImportRejected("no_valid_features", rejected=report.rows_rejected)
    if options.strict and report.rows_rejected:
        raise ImportRejected("strict_rejected", rejected=report.rows_rejected)

    # -- merge: the report row first (its id is referenced), then the data ----------------
    if progress:
        progress("merge", report.rows_read, src.count)
    report.status = "imported"
    report.id = _insert_report(conn, report, scope, options)
    report.counts = target.merge(conn, report.id)
    conn.execute(text("DROP TABLE IF EXISTS import_staging"))
    _update_report(conn, report, scope, options)
    return report.id


def _import_raster(conn, path: Path, options: ImportOptions, report: ImportReport, limits: Limits,
                   scope: Scope) -> tuple[int, Path | None]:
    info = inspect_raster(path, options.crs, limits)
    report.format = "geotiff"
    report.source_crs = info.crs_label
    report.rows_read = report.rows_imported = 1
    report.counts = {"width": info.width, "height": info.height, "bands": info.band_count}
    report.status = "imported"
    report.id = _insert_report(conn, report, scope, options)
    raster_dir = options.raster_dir or (get_settings().data_dir / "rasters")
    name = options.layer_name
    _rid, dest, created = store_raster(conn, path, report.file_sha256, name, options.title_zh or name,
                                       options.title_en or name, info, Path(raster_dir), report.id)
    report.counts["metadata"] = describe(info)
    _update_report(conn, report, scope, options)
    return report.id, dest if created else None


def _check_request(target: str, options: ImportOptions, scope: Scope) -> None:
    if target not in ALL_TARGETS:
        raise ImportRejected("target_unknown", target=target)
    if target in ("custom", "raster"):
        name = options.layer_name or ""
        if not LAYER_NAME.match(name):
            raise ImportRejected("layer_name_required")
        if name in RESERVED_LAYER_NAMES:
            raise ImportRejected("layer_name_reserved", name=name)
    cls = TARGETS.get(target)
    county_only = target == "raster" or (cls is not None and cls.county_scope_only)
    if county_only and scope.village_ids is not None:
        raise ImportRejected("scope_required", target=target)


def run_import(path: str | Path, target: str, connection, *, scope: Scope = SYSTEM,
               options: ImportOptions | None = None, limits: Limits | None = None,
               progress: Progress | None = None) -> ImportReport:
    """Import one file into one target, all or nothing, and return its report.

    Parameters
    ----------
    path : str or Path
        The file: a ZIP (Shapefile or any supported file inside), GeoPackage, GeoJSON,
        CSV, XLSX or GeoTIFF.
    target : str
        ``villages``, ``grids``, ``resources``, ``population``, ``sensors``, ``custom``
        or ``raster`` (GeoTIFF).
    connection : sqlalchemy.engine.Connection
        The caller's connection. When it is already in a transaction, the import runs in
        a savepoint and the caller decides whether to commit; otherwise the import
        commits its own transaction.
    scope : geodata.db.Scope
        Whose import this is: applied to the transaction (RLS), saved with the report.
    options : ImportOptions, optional
    limits : Limits, optional
        File and archive limits.
    progress : callable, optional
        ``progress(stage, done, total)`` — stages ``hash``, ``read``, ``validate``,
        ``merge``, ``done``; ``total`` may be None.

    Returns
    -------
    ImportReport
        ``status`` is ``imported``, ``already_imported``, ``refused`` (with
        ``reason_code`` and the messages) or ``failed``. Every report is saved.

    Raises
    ------
    Exception
        Only unexpected errors (a bug, the database gone); they are rolled back and
        saved as ``failed`` first when the database is still reachable.
    """
    options = options or ImportOptions()
    limits = limits or Limits()
    path = Path(path)
    report = ImportReport(file_name=options.file_name or path.name, target=target)
    report.options = options.public()
    created_file: Path | None = None
    if progress:
        progress("hash", 0, None)
    try:
        report.file_sha256, report.file_size = file_digest(path)
    except OSError as exc:
        raise ImportRejected("unreadable", error=str(exc)[:200]) from None

    outer = connection.in_transaction()
    tx = connection.begin_nested() if outer else connection.begin()
    try:
        apply_scope(connection, scope)
        _check_request(target, options, scope)
        if report.file_size == 0:
            raise ImportRejected("empty_file")
        if report.file_size > limits.max_file_bytes:
            raise ImportRejected("file_too_large", size=report.file_size, limit=limits.max_file_bytes)
        if target == "resources" and not options.source:
            options.source = Path(report.file_name).stem
        layer_key = TARGETS[target](  # noqa: SLF001 - only for its layer key
            {}, options, {}).layer_key() if target in TARGETS else (options.layer_name or "")
        report.layer = layer_key
        connection.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"),
                           {"k": f"dvmap-import:{target}:{layer_key}"})
        previous = _previous_import(connection, report.file_sha256, target, layer_key)
        if previous is not None:
            report.status, report.duplicate_of = "already_imported", previous
        else:
            with tempfile.TemporaryDirectory(prefix="dvmap-import-", dir=options.work_dir) as work:
                fmt, dataset, layer = locate(path, Path(work), options.layer, limits)
                if fmt == "geotiff":
                    if target != "raster":
                        raise ImportRejected("target_format", format="GeoTIFF", target=target)
                    _rid, created_file = _import_raster(connection, dataset, options, report, limits, scope)
                else:
                    if target == "raster":
                        raise ImportRejected("target_format", format=fmt, target=target)
                    _import_vector(connection, fmt, dataset, layer, target, options, report, limits, progress,
                                   scope)
        tx.commit()
        created_file = None
    except ImportRejected as exc:
        tx.rollback()
        report.refuse(exc.code, exc.message_zh, exc.message_en)
        report.id = None
    except IntegrityError as exc:
        tx.rollback()
        if "import_report_once_uq" not in str(exc):
            return _failed(connection, report, scope, options, exc, outer)
        report.status = "already_imported"
        report.id = None
        report.duplicate_of = None
    except DBAPIError as exc:
        tx.rollback()
        # The grid topology trigger (migration 0006) refuses overlapping/outside grids
        # at commit with SQLSTATE DG001–DG005: that is the data's fault, so a refusal.
        state = getattr(getattr(exc, "orig", None), "sqlstate", None) or ""
        if not state.startswith("DG"):
            return _failed(connection, report, scope, options, exc, outer)
        detail = getattr(getattr(exc.orig, "diag", None), "message_primary", None) or str(exc.orig)
        report.refuse("grid_topology", f"网格拓扑检查未通过:{detail}", f"Grid topology check failed: {detail}")
        report.id = None
    except Exception as exc:
        tx.rollback()
        return _failed(connection, report, scope, options, exc, outer)
    finally:
        if created_file is not None:
            created_file.unlink(missing_ok=True)

    if report.status != "imported":
        if report.status == "already_imported":
            report.rows_read = report.rows_imported = report.rows_rejected = 0
            report.rows_repaired = report.rows_flagged = 0
            report.issues = []
            if report.duplicate_of is None:
                with (connection.begin_nested() if outer else connection.begin()):
                    apply_scope(connection, scope)
                    report.duplicate_of = _previous_import(connection, report.file_sha256, target, report.layer)
            report.message_zh, report.message_en = message("already_imported", id=report.duplicate_of or "?")
        _save_refusal(connection, report, scope, options, outer)
    if progress:
        progress("done", report.rows_read, report.rows_read)
    return report


def _save_refusal(connection, report: ImportReport, scope: Scope, options: ImportOptions, outer: bool) -> None:
    try:
        with (connection.begin_nested() if outer else connection.begin()):
            apply_scope(connection, scope)
            report.id = _insert_report(connection, report, scope, options)
    except Exception:  # noqa: BLE001 - the report is shown even if it cannot be saved
        log.exception("could not save the import report of %s", report.file_name)


def _failed(connection, report, scope, options, exc, outer) -> ImportReport:
    log.exception("import of %s failed", report.file_name)
    zh, en = message("internal_error", error=type(exc).__name__)
    report.status, report.reason_code, report.message_zh, report.message_en = "failed", "internal_error", zh, en
    report.id = None
    _save_refusal(connection, report, scope, options, outer)
    raise exc


def import_file(path: str | Path, target: str, engine, *, scope: Scope = SYSTEM,
                options: ImportOptions | None = None, limits: Limits | None = None,
                progress: Progress | None = None) -> ImportReport:
    """:func:`run_import` on a connection of its own (committed), for the CLI and the web.

    Parameters
    ----------
    path, target, scope, options, limits, progress
        As for :func:`run_import`.
    engine : sqlalchemy.engine.Engine
        Engine of the role to import as (RLS applies with ``scope``).

    Returns
    -------
    ImportReport
    """
    with engine.connect() as conn:
        return run_import(path, target, conn, scope=scope, options=options, limits=limits, progress=progress)


__all__ = ["ImportOptions", "run_import", "import_file", "file_digest", "get_report", "recent_reports",
           "ALL_TARGETS"]
