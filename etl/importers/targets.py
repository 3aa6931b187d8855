"""Import targets: how a feature's attributes map onto a table, and how staging is merged.

Each target turns a feature into a staging row (``key``, ``name``, ``cols``) in Python,
then validates in SQL (villages by containment or code, county flags, scope) and merges
the staging table into its table in the caller's transaction:

============  ========  ===========================================================
target        geometry  merge
============  ========  ===========================================================
villages      polygon   upsert by 12-digit code (town from the code's first 9 digits)
grids         polygon   by 15-digit code: unchanged / new version (old closed) / new
resources     point     swap: rows of the same ``source`` replaced
sensors       point     upsert by device code
population    none      upsert by (village or grid code, year)
custom        any one   swap: the layer's features replaced (layer created if new)
============  ========  ===========================================================
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import text

from etl.importers.readers import normalise_header
from geodata.config import STORAGE_SRID

ALIASES: dict[str, list[str]] = {
    "id": ["id", "编号", "唯一编号", "标识码", "objectid", "oid", "bh", "序号"],
    "code": ["code", "代码", "编码", "区划代码", "统计用区划代码", "行政区划代码", "村代码", "村编码", "网格编码",
             "网格代码", "网格编号", "设备编号", "设备编码", "设备代码", "sbbh", "bm", "dm", "qhdm"],
    "name": ["name", "名称", "名字", "mc", "机构名称", "单位名称", "站点名称", "设施名称", "村名", "村名称",
             "网格名称", "title", "设备名称"],
    "type": ["type", "类型", "类别", "lx", "设施类型", "设备类型", "kind", "category", "分类", "机构类型"],
    "capacity": ["capacity", "容量", "床位", "床位数", "学位", "学位数", "座位", "座位数", "规模", "cws"],
    "address": ["address", "地址", "dz", "详细地址", "addr"],
    "year": ["year", "年份", "年度", "nf", "统计年份"],
    "total": ["total", "总人口", "人口", "人口数", "户籍人口", "常住人口", "zrk", "population"],
    "age_60_plus": ["age60plus", "60岁以上", "60岁及以上", "60岁以上人口", "60岁及以上人口", "老年人口", "age60"],
    "households": ["households", "户数", "总户数", "hs"],
    "status": ["status", "状态"],
}

RESOURCE_WORDS = [
    ("幼儿园", "kindergarten"), ("托儿", "kindergarten"),
    ("卫生", "clinic"), ("医院", "clinic"), ("诊所", "clinic"), ("医疗", "clinic"), ("社区卫生", "clinic"),
    ("养老", "elderly_care"), ("敬老", "elderly_care"), ("老年", "elderly_care"), ("照料", "elderly_care"),
    ("学校", "school"), ("小学", "school"), ("中学", "school"), ("学", "school"),
    ("便民", "service_station"), ("服务站", "service_station"), ("服务中心", "service_station"),
    ("文化", "cultural_hall"), ("礼堂", "cultural_hall"),
]
SENSOR_STATUS = ("normal", "alarm", "offline")
_STATUS_WORDS = {"正常": "normal", "在线": "normal", "告警": "alarm", "报警": "alarm", "离线": "offline"}
RESERVED_LAYER_NAMES = {"villages", "village", "grids", "grid", "resources", "resource", "sensors", "sensor",
                        "population", "towns", "town", "county", "outline", "labels", "events", "event", "custom",
                        "raster", "rasters", "collections", "conformance", "api"}
LAYER_NAME = re.compile(r"^[a-z][a-z0-9_]{1,39}$")


class FeatureReject(Exception):
    """One feature cannot be imported; ``code`` and ``detail`` go into the report."""

    def __init__(self, code: str, **detail):
        super().__init__(code)
        self.code = code
        self.detail = detail


def resolve_fields(fields: list[str], field_map: dict | None = None) -> dict[str, str]:
    """Map logical names (name, code, type...) to the file's field names.

    Parameters
    ----------
    fields : list of str
        The file's attribute names, in order.
    field_map : dict, optional
        Explicit ``{logical: field}`` choices; they win over the aliases.

    Returns
    -------
    dict
        ``{logical: field name}`` for every logical name found.
    """
    by_norm = {}
    for f in fields:
        by_norm.setdefault(normalise_header(f), f)
    out = {}
    for logical, aliases in ALIASES.items():
        for alias in aliases:
            if normalise_header(alias) in by_norm:
                out[logical] = by_norm[normalise_header(alias)]
                break
    for logical, name in (field_map or {}).items():
        if name in fields:
            out[logical] = name
    return out


def _text(value) -> str | None:
    if value is None:
        return None
    s = str(value).strip()
    return s or None


def _int(value, field: str, minimum: int | None = 0) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        f = float(str(value).strip()) if not isinstance(value, (int, float)) else float(value)
        if f != f or f in (float("inf"), float("-inf")) or f != int(f):
            raise ValueError
        n = int(f)
    except (TypeError, ValueError, OverflowError):
        raise FeatureReject("bad_value", field=field, value=str(value)[:40], why="整数 / integer") from None
    if minimum is not None and n < minimum:
        raise FeatureReject("bad_value", field=field, value=str(value)[:40], why=f">= {minimum}")
    if n > 2_147_483_647:
        raise FeatureReject("bad_value", field=field, value=str(value)[:40], why="too large")
    return n


def _code(value, digits: int, field: str) -> str:
    s = _text(value)
    if s is None:
        raise FeatureReject("missing_field", field=field)
    if s.endswith(".0"):  # spreadsheets turn codes into floats
        s = s[:-2]
    if not re.fullmatch(rf"[0-9]{{{digits}}}", s):
        raise FeatureReject("bad_value", field=field, value=s[:40], why=f"{digits} 位数字 / {digits} digits")
    return s


@dataclass
class Staged:
    """A feature as it goes into staging: merge key, name and the target's columns."""

    key: str | None
    name: str | None
    cols: dict


class Target:
    """Base class: subclasses set ``name``, ``family`` and implement the hooks."""

    name = ""
    family: str | None = None          # point | polygon | None (no geometry needed) | "any"
    single_point = False
    promote_multi = False
    county_scope_only = True           # needs the whole-county scope
    key_field = "id"                   # logical field whose duplicates are reported

    def __init__(self, fields: dict[str, str], options, reference: dict):
        self.fields = fields
        self.options = options
        self.reference = reference     # resource/sensor types etc. read from the database

    def get(self, props: dict, logical: str):
        """The value of a logical field (``name``, ``code``...) in a feature's attributes."""
        name = self.fields.get(logical)
        return props.get(name) if name else None

    def key_of(self, props: dict) -> str | None:
        """The feature's id, whose duplicates are reported (None: no id column)."""
        return _text(self.get(props, self.key_field))

    def stage(self, props: dict) -> Staged:
        """Map attributes to a :class:`Staged` row; raise :class:`FeatureReject` when impossible."""
        raise NotImplementedError

    def layer_key(self) -> str:
        """What idempotency and reports are keyed on besides the target ('' for most)."""
        return ""

    # SQL hooks: run on the connection, with the staging table filled
    def validate(self, conn) -> None:
        """Set ``village_id`` and ``reject_code`` on staging rows."""

    def merge(self, conn, import_id: int) -> dict:
        """Merge the staging rows without ``reject_code`` into the table; return counts."""
        raise NotImplementedError


def _assign_village_by_point(conn, expr: str = "s.geom") -> None:
    conn.execute(text(f"""
        UPDATE import_staging s SET village_id = (
            SELECT v.id FROM village v WHERE ST_Covers(v.geom, {expr}) ORDER BY v.id LIMIT 1)
         WHERE s.reject_code IS NULL AND s.geom IS NOT NULL
    """))


def _reject_without_village(conn) -> None:
    conn.execute(text("""
        UPDATE import_staging s
           SET reject_code = CASE WHEN s.flag_code = 'outside_county' THEN 'outside_county' ELSE 'no_village' END
         WHERE s.reject_code IS NULL AND s.village_id IS NULL
    """))


# -- resources -------------------------------------------------------------------------
class ResourceTarget(Target):
    """Public resources (points), one ``source`` per department dataset."""

    name = "resources"
    family = "point"
    single_point = True
    county_scope_only = False

    def layer_key(self) -> str:
        return self.options.source or ""

    def _type(self, props) -> str:
        codes = self.reference.get("resource_types", {})
        given = self.options.resource_type
        value = given if given else _text(self.get(props, "type"))
        if value is None:
            raise FeatureReject("missing_field", field=self.fields.get("type") or "type / 类型")
        low = value.strip().lower()
        for code, (zh, en) in codes.items():
            if low in (code, en.lower()) or value.strip() == zh:
                return code
        for word, code in RESOURCE_WORDS:
            if word in value and code in codes:
                return code
        raise FeatureReject("unknown_type", value=value[:40], choices=", ".join(codes))

    def stage(self, props):
        name = _text(self.get(props, "name"))
        if name is None:
            raise FeatureReject("missing_field", field=self.fields.get("name") or "name / 名称")
        cols = {"type": self._type(props),
                "capacity": _int(self.get(props, "capacity"), self.fields.get("capacity", "capacity")),
                "address": _text(self.get(props, "address"))}
        return Staged(self.key_of(props), name, cols)

    def validate(self, conn):
        _assign_village_by_point(conn)
        _reject_without_village(conn)

    def merge(self, conn, import_id):
        # Rows of the same source are matched by the file's id (kept in attrs._source_id),
        # so ids other tables refer to survive a re-import; rows gone from the file go.
        source = "import:" + self.layer_key()
        params = {"src": source, "imp": import_id}
        updated = conn.execute(text(f"""
            UPDATE resource r
               SET village_id = s.village_id, type = s.cols->>'type', name = s.name,
                   capacity = (s.cols->>'capacity')::integer, address = s.cols->>'address',
                   geom = ST_SetSRID(s.geom, {STORAGE_SRID}),
                   attrs = s.props || jsonb_build_object('_source_id', s.key, '_import_id', CAST(:imp AS bigint))
              FROM import_staging s
             WHERE s.reject_code IS NULL AND s.key IS NOT NULL AND r.source = :src
               AND r.attrs->>'_source_id' = s.key
        """), params).rowcount
        deleted = conn.execute(text("""
            DELETE FROM resource r
             WHERE r.source = :src
               AND NOT EXISTS (SELECT 1 FROM import_staging s
                                WHERE s.reject_code IS NULL AND s.key IS NOT NULL AND s.key = r.attrs->>'_source_id')
        """), params).rowcount
        inserted = conn.execute(text(f"""
            INSERT INTO resource (village_id, type, name, capacity, address, geom, attrs, source)
            SELECT s.village_id, s.cols->>'type', s.name, (s.cols->>'capacity')::integer, s.cols->>'address',
                   ST_SetSRID(s.geom, {STORAGE_SRID}),
                   s.props || jsonb_build_object('_source_id', s.key, '_import_id', CAST(:imp AS bigint)), :src
              FROM import_staging s
             WHERE s.reject_code IS NULL
               AND NOT EXISTS (SELECT 1 FROM resource r
                                WHERE s.key IS NOT NULL AND r.source = :src AND r.attrs->>'_source_id' = s.key)
             ORDER BY s.row_no
        """), params).rowcount
        return {"inserted": inserted, "updated": updated, "deleted": deleted}


# -- sensors -----------------------------------------------------------------------------
class SensorTarget(Target):
    """IoT sensors (points), upserted by device code."""

    name = "sensors"
    family = "point"
    single_point = True
    key_field = "code"

    def _type(self, props) -> str:
        codes = self.reference.get("sensor_types", {})
        value = self.options.sensor_type or _text(self.get(props, "type"))
        if value is None:
            raise FeatureReject("missing_field", field=self.fields.get("type") or "type / 类型")
        for code, (zh, en) in codes.items():
            if value.strip().lower() in (code, en.lower()) or value.strip() == zh:
                return code
        raise FeatureReject("unknown_type", value=value[:40], choices=", ".join(codes))

    def stage(self, props):
        code = _text(self.get(props, "code"))
        if code is None:
            raise FeatureReject("missing_field", field=self.fields.get("code") or "code / 设备编号")
        status = _text(self.get(props, "status")) or "normal"
        status = _STATUS_WORDS.get(status, status.lower())
        if status not in SENSOR_STATUS:
            raise FeatureReject("bad_value", field=self.fields.get("status", "status"), value=status[:40],
                                why="normal/alarm/offline")
        return Staged(code, _text(self.get(props, "name")), {"type": self._type(props), "status": status})

    def validate(self, conn):
        _assign_village_by_point(conn)
        _reject_without_village(conn)

    def merge(self, conn, import_id):
        rows = conn.execute(text(f"""
            INSERT INTO sensor (code, type, village_id, geom, status)
            SELECT key, cols->>'type', village_id, ST_SetSRID(geom, {STORAGE_SRID}), cols->>'status'
              FROM import_staging WHERE reject_code IS NULL ORDER BY row_no
            ON CONFLICT (code) DO UPDATE
               SET type = EXCLUDED.type, village_id = EXCLUDED.village_id, geom = EXCLUDED.geom,
                   status = EXCLUDED.status
            RETURNING (xmax = 0) AS inserted
        """)).scalars().all()
        ins = sum(1 for r in rows if r)
        return {"inserted": ins, "updated": len(rows) - ins}


# -- villages ------------------------------------------------------------------------------
class VillageTarget(Target):
    """Village boundaries, upserted by 12-digit code."""

    name = "villages"
    family = "polygon"
    promote_multi = True
    key_field = "code"

    def stage(self, props):
        code = _code(self.get(props, "code"), 12, self.fields.get("code", "code / 区划代码"))
        name = _text(self.get(props, "name"))
        if name is None:
            raise FeatureReject("missing_field", field=self.fields.get("name") or "name / 名称")
        return Staged(code, name, {"town_code": code[:9] + "000"})

    def validate(self, conn):
        conn.execute(text("""
            UPDATE import_staging s SET reject_code = 'unknown_town',
                   reject_detail = jsonb_build_object('code', s.cols->>'town_code')
             WHERE s.reject_code IS NULL
               AND NOT EXISTS (SELECT 1 FROM town t WHERE t.code = s.cols->>'town_code')
        """))

    def merge(self, conn, import_id):
        rows = conn.execute(text(f"""
            INSERT INTO village (town_id, code, name, geom, label_point)
            SELECT t.id, s.key, s.name, ST_Multi(ST_SetSRID(s.geom, {STORAGE_SRID})),
                   ST_PointOnSurface(ST_SetSRID(s.geom, {STORAGE_SRID}))
              FROM import_staging s JOIN town t ON t.code = s.cols->>'town_code'
             WHERE s.reject_code IS NULL ORDER BY s.row_no
            ON CONFLICT (code) DO UPDATE
               SET name = EXCLUDED.name, geom = EXCLUDED.geom, label_point = EXCLUDED.label_point,
                   town_id = EXCLUDED.town_id
            RETURNING (xmax = 0) AS inserted
        """)).scalars().all()
        ins = sum(1 for r in rows if r)
        return {"inserted": ins, "updated": len(rows) - ins}


# -- grids ------------------------------------------------------------------------------------
class GridTarget(Target):
    """Grid polygons by 15-digit code; a changed grid gets a new version."""

    name = "grids"
    family = "polygon"
    promote_multi = True
    key_field = "code"

    def stage(self, props):
        code = _code(self.get(props, "code"), 15, self.fields.get("code", "code / 网格编码"))
        name = _text(self.get(props, "name")) or code
        return Staged(code, name, {"village_code": code[:12]})

    def validate(self, conn):
        conn.execute(text("""
            UPDATE import_staging s SET village_id = v.id FROM village v
             WHERE s.reject_code IS NULL AND v.code = s.cols->>'village_code'
        """))
        conn.execute(text("""
            UPDATE import_staging s SET reject_code = 'unknown_village',
                   reject_detail = jsonb_build_object('code', s.cols->>'village_code')
             WHERE s.reject_code IS NULL AND s.village_id IS NULL
        """))

    def merge(self, conn, import_id):
        changed_by = f"import:{import_id}"
        conn.execute(text(f"""
            CREATE TEMP TABLE import_grid_plan ON COMMIT DROP AS
            SELECT s.row_no, s.key, s.name, ST_Multi(ST_SetSRID(s.geom, {STORAGE_SRID})) AS geom, s.village_id,
                   g.id AS old_id, g.uid AS old_uid, g.version AS old_version, g.worker_id,
                   CASE WHEN g.id IS NULL THEN 'new'
                        WHEN ST_Equals(g.geom, ST_SetSRID(s.geom, {STORAGE_SRID})) AND g.name = s.name
                             AND g.village_id = s.village_id THEN 'same'
                        ELSE 'changed' END AS action
              FROM import_staging s
              LEFT JOIN grid g ON g.code = s.key AND g.valid_to IS NULL
             WHERE s.reject_code IS NULL
        """))
        ts = conn.execute(text("SELECT clock_timestamp()")).scalar_one()
        conn.execute(text("""
            UPDATE grid g SET valid_to = :ts, changed_by = :by
              FROM import_grid_plan p WHERE p.action = 'changed' AND g.id = p.old_id
        """), {"ts": ts, "by": changed_by})
        conn.execute(text("""
            INSERT INTO grid (uid, version, village_id, code, name, geom, worker_id, valid_from, changed_by)
            SELECT CASE WHEN action = 'new' THEN gen_random_uuid() ELSE old_uid END,
                   CASE WHEN action = 'new' THEN 1 ELSE old_version + 1 END,
                   village_id, key, name, geom, worker_id, :ts, :by
              FROM import_grid_plan WHERE action IN ('new', 'changed') ORDER BY row_no
        """), {"ts": ts, "by": changed_by})
        counts = dict(conn.execute(text("SELECT action, count(*) FROM import_grid_plan GROUP BY action")).all())
        conn.execute(text("DROP TABLE import_grid_plan"))
        return {"inserted": counts.get("new", 0), "new_versions": counts.get("changed", 0),
                "unchanged": counts.get("same", 0)}


# -- population ---------------------------------------------------------------------------------
class PopulationTarget(Target):
    """Population tables keyed by village or grid code and year (no geometry)."""

    name = "population"
    family = None
    key_field = "code"

    def key_of(self, props):
        code = _text(self.get(props, "code"))
        year = self.options.year or _text(self.get(props, "year"))
        return f"{code}/{year}" if code else None

    def stage(self, props):
        raw = _text(self.get(props, "code"))
        if raw is None:
            raise FeatureReject("missing_field", field=self.fields.get("code") or "code / 区划代码")
        raw = raw[:-2] if raw.endswith(".0") else raw
        if not re.fullmatch(r"[0-9]{12}|[0-9]{15}", raw):
            raise FeatureReject("bad_value", field=self.fields.get("code", "code"), value=raw[:40],
                                why="12 或 15 位数字 / 12 or 15 digits")
        year = self.options.year if self.options.year else _int(self.get(props, "year"), "year", 1949)
        if year is None:
            raise FeatureReject("missing_field", field=self.fields.get("year") or "year / 年份")
        if not 1949 <= year <= 2100:
            raise FeatureReject("bad_value", field="year", value=str(year), why="1949–2100")
        vals = {}
        for logical in ("total", "age_60_plus", "households"):
            v = _int(self.get(props, logical), self.fields.get(logical, logical))
            if v is None:
                raise FeatureReject("missing_field", field=self.fields.get(logical) or logical)
            vals[logical] = v
        if vals["age_60_plus"] > vals["total"]:
            raise FeatureReject("bad_value", field=self.fields.get("age_60_plus", "age_60_plus"),
                                value=str(vals["age_60_plus"]), why="<= total")
        return Staged(f"{raw}/{year}", None, {"code": raw, "year": year, **vals})

    def validate(self, conn):
        conn.execute(text("""
            UPDATE import_staging s SET village_id = v.id FROM village v
             WHERE s.reject_code IS NULL AND length(s.cols->>'code') = 12 AND v.code = s.cols->>'code'
        """))
        conn.execute(text("""
            UPDATE import_staging s SET village_id = g.village_id,
                   cols = s.cols || jsonb_build_object('grid_uid', g.uid::text)
              FROM grid g
             WHERE s.reject_code IS NULL AND length(s.cols->>'code') = 15 AND g.code = s.cols->>'code'
               AND g.valid_to IS NULL
        """))
        conn.execute(text("""
            UPDATE import_staging s
               SET reject_code = CASE WHEN length(s.cols->>'code') = 12 THEN 'unknown_village' ELSE 'unknown_grid' END,
                   reject_detail = jsonb_build_object('code', s.cols->>'code')
             WHERE s.reject_code IS NULL AND s.village_id IS NULL
        """))

    def merge(self, conn, import_id):
        rows = conn.execute(text("""
            INSERT INTO population (village_id, grid_uid, year, total, age_60_plus, households)
            SELECT village_id, (cols->>'grid_uid')::uuid, (cols->>'year')::integer, (cols->>'total')::integer,
                   (cols->>'age_60_plus')::integer, (cols->>'households')::integer
              FROM import_staging WHERE reject_code IS NULL ORDER BY row_no
            ON CONFLICT (village_id, grid_uid, year) DO UPDATE
               SET total = EXCLUDED.total, age_60_plus = EXCLUDED.age_60_plus, households = EXCLUDED.households
            RETURNING (xmax = 0) AS inserted
        """)).scalars().all()
        ins = sum(1 for r in rows if r)
        return {"inserted": ins, "updated": len(rows) - ins}


# -- custom layers -------------------------------------------------------------------------------------
class CustomTarget(Target):
    """A custom layer: created if new, its features replaced as a whole."""

    name = "custom"
    family = "any"
    county_scope_only = False

    def layer_key(self) -> str:
        return self.options.layer_name or ""

    def stage(self, props):
        return Staged(self.key_of(props), _text(self.get(props, "name")), {})

    def validate(self, conn):
        _assign_village_by_point(conn, "ST_PointOnSurface(s.geom)")
        # Outside every village is allowed for the county scope (village_id NULL, county-only);
        # a village-scoped importer may only bring features in their villages.
        if conn.execute(text("SELECT dvmap_scope_all()")).scalar_one() is not True:
            _reject_without_village(conn)

    def merge(self, conn, import_id):
        opts = self.options
        import json

        layer_id = conn.execute(text("""
            INSERT INTO custom_layer (name, title_zh, title_en, geom_family, fields, import_id)
            VALUES (:name, :zh, :en, :fam, CAST(:fields AS jsonb), :imp)
            ON CONFLICT (name) DO UPDATE
               SET title_zh = EXCLUDED.title_zh, title_en = EXCLUDED.title_en, geom_family = EXCLUDED.geom_family,
                   fields = EXCLUDED.fields, import_id = EXCLUDED.import_id, updated_at = now()
            RETURNING id
        """), {"name": opts.layer_name, "zh": opts.title_zh or opts.layer_name, "en": opts.title_en or opts.layer_name,
               "fam": self.reference["family"], "fields": json.dumps(self.reference.get("fields", []),
                                                                    ensure_ascii=False),
               "imp": import_id}).scalar_one()
        deleted = conn.execute(text("DELETE FROM custom_feature WHERE layer_id = :l"), {"l": layer_id}).rowcount
        inserted = conn.execute(text(f"""
            INSERT INTO custom_feature (layer_id, village_id, source_id, name, props, geom, import_id)
            SELECT :l, village_id, key, name, props, ST_SetSRID(geom, {STORAGE_SRID}), :imp
              FROM import_staging WHERE reject_code IS NULL ORDER BY row_no
        """), {"l": layer_id, "imp": import_id}).rowcount
        return {"inserted": inserted, "replaced": deleted}


TARGETS: dict[str, type[Target]] = {
    t.name: t for t in (VillageTarget, GridTarget, ResourceTarget, PopulationTarget, SensorTarget, CustomTarget)
}
