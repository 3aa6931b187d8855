"""The map's layers as feature collections, for exports and the OGC API – Features.

A :class:`Collection` is one queryable layer: the built-in tables (villages, towns,
grids, resources, sensors, population, events) and every custom layer brought in by an
import. :func:`items` pages through one with a bbox, a datetime interval where the layer
has time, and limit/offset; GeoJSON is built in PostGIS. Everything runs in the caller's
session, so row-level security decides what a user may see — an export or an OGC
request never shows more than the map would.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import text
from sqlalchemy.orm import Session

from geodata.clock import zone_name
from geodata.config import STORAGE_SRID

BBox = tuple[float, float, float, float]
MAX_LIMIT = 10000


@dataclass(frozen=True)
class Collection:
    """One layer as a feature collection.

    ``sql`` selects ``id``, ``geom`` (EPSG:4490), ``props`` (jsonb), ``t0``/``t1``
    (timestamptz or NULL: the feature's time interval, open when ``t1`` is NULL) and
    ``village_id``; ``current`` is the condition applied when no datetime is asked for
    (e.g. only the current grid versions).
    """

    id: str
    title_zh: str
    title_en: str
    geometry_type: str
    sql: str
    temporal: bool = False
    current: str | None = None
    kind: str = "builtin"
    params: tuple = ()

    def title(self, lang: str = "zh") -> str:
        """The title in ``lang``."""
        return self.title_en if lang == "en" else self.title_zh


_BUILTIN = [
    Collection("villages", "行政村", "Villages", "MultiPolygon", """
        SELECT v.id, v.geom, jsonb_build_object('code', v.code, 'name', v.name, 'town', t.name,
                                                'town_code', t.code, 'area_m2', round(v.area_m2)) AS props,
               NULL::timestamptz AS t0, NULL::timestamptz AS t1, v.id AS village_id
          FROM village v JOIN town t ON t.id = v.town_id"""),
    Collection("towns", "乡镇", "Towns", "MultiPolygon", """
        SELECT id, geom, jsonb_build_object('code', code, 'name', name, 'kind', kind) AS props,
               NULL::timestamptz AS t0, NULL::timestamptz AS t1, NULL::integer AS village_id
          FROM town"""),
    Collection("grids", "网格", "Grids", "MultiPolygon", """
        SELECT g.id, g.geom, jsonb_build_object('code', g.code, 'name', g.name, 'version', g.version,
                                                'uid', g.uid::text, 'village_code', v.code, 'worker', pe.name,
                                                'valid_from', g.valid_from, 'valid_to', g.valid_to) AS props,
               g.valid_from AS t0, g.valid_to AS t1, g.village_id
          FROM grid g JOIN village v ON v.id = g.village_id LEFT JOIN person pe ON pe.id = g.worker_id""",
               temporal=True, current="x.t1 IS NULL"),
    Collection("resources", "公共资源", "Public resources", "Point", """
        SELECT r.id, r.geom, jsonb_build_object('name', r.name, 'type', r.type, 'type_zh', rt.name_zh,
                                                'capacity', r.capacity, 'address', r.address,
                                                'village_code', v.code, 'source', r.source) AS props,
               NULL::timestamptz AS t0, NULL::timestamptz AS t1, r.village_id
          FROM resource r JOIN resource_type rt ON rt.code = r.type JOIN village v ON v.id = r.village_id"""),
    Collection("sensors", "物联感知设备", "IoT sensors", "Point", """
        SELECT s.id, s.geom, jsonb_build_object('code', s.code, 'type', s.type, 'status', s.status,
                                                'village_code', v.code, 'installed_at', s.installed_at,
                                                'last_seen_at', s.last_seen_at) AS props,
               s.installed_at AS t0, NULL::timestamptz AS t1, s.village_id
          FROM sensor s JOIN village v ON v.id = s.village_id""", temporal=True),
    Collection("population", "人口(行政村)", "Population (villages)", "MultiPolygon", """
        SELECT p.id, v.geom, jsonb_build_object('village_code', v.code, 'name', v.name, 'year', p.year,
                                                'total', p.total, 'age_60_plus', p.age_60_plus,
                                                'households', p.households) AS props,
               make_timestamptz(p.year, 1, 1, 0, 0, 0, :tz) AS t0,
               make_timestamptz(p.year + 1, 1, 1, 0, 0, 0, :tz) AS t1, p.village_id
          FROM population p JOIN village v ON v.id = p.village_id WHERE p.grid_uid IS NULL""",
               temporal=True, current="x.t0 = (SELECT max(t0) FROM ({sql}) m)"),
]

_EVENTS = Collection("events", "事件", "Events", "Point", """
        SELECT e.id, e.geom, jsonb_build_object('state', e.state, 'class', e.class_code, 'subclass', e.subclass_code,
                                                'urgency', e.urgency, 'source', e.source, 'address', e.address,
                                                'description', e.description, 'village_code', v.code,
                                                'reported_at', e.reported_at, 'closed_at', e.closed_at) AS props,
               e.reported_at AS t0, e.reported_at AS t1, e.village_id
          FROM event e LEFT JOIN village v ON v.id = e.village_id""", temporal=True)

_CUSTOM_SQL = """
        SELECT f.id, f.geom, f.props, NULL::timestamptz AS t0, NULL::timestamptz AS t1, f.village_id
          FROM custom_feature f WHERE f.layer_id = {layer_id}"""
_FAMILY_TYPES = {"point": "Point", "line": "LineString", "polygon": "Polygon"}


def collections(session: Session) -> list[Collection]:
    """Every collection the database has: built-in layers, events (when that table exists) and custom layers.

    Parameters
    ----------
    session : sqlalchemy.orm.Session
        A scoped session.

    Returns
    -------
    list of Collection
    """
    out = list(_BUILTIN)
    has = session.execute(text("SELECT to_regclass('event') IS NOT NULL, to_regclass('custom_layer') IS NOT NULL")).one()
    if has[0]:
        out.append(_EVENTS)
    if has[1]:
        for row in session.execute(text("SELECT id, name, title_zh, title_en, geom_family FROM custom_layer ORDER BY name")):
            out.append(Collection(row.name, row.title_zh, row.title_en, _FAMILY_TYPES.get(row.geom_family, "Geometry"),
                                  _CUSTOM_SQL.format(layer_id=int(row.id)), kind="custom"))
    return out


def get_collection(session: Session, collection_id: str) -> Collection | None:
    """The collection called ``collection_id``, or None."""
    for c in collections(session):
        if c.id == collection_id:
            return c
    return None


# -- parameters --------------------------------------------------------------------------------
def parse_bbox(value: str | None) -> BBox | None:
    """An OGC ``bbox`` parameter (lon/lat, 4 or 6 numbers) as (w, s, e, n).

    Raises
    ------
    ValueError
        When it is not 4/6 finite numbers with w <= e and s <= n.
    """
    if value is None or value == "":
        return None
    parts = [float(p) for p in value.split(",")]
    if len(parts) == 6:
        parts = [parts[0], parts[1], parts[3], parts[4]]
    if len(parts) != 4 or not all(math.isfinite(p) for p in parts):
        raise ValueError("bbox needs 4 (or 6) numbers")
    w, s, e, n = parts
    if w > e or s > n:
        raise ValueError("bbox must be west,south,east,north")
    return w, s, e, n


_OPEN = ("", "..")


def _instant(value: str) -> datetime:
    text_ = value.strip().replace("z", "Z")
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text_):
        text_ += "T00:00:00Z"
    dt = datetime.fromisoformat(text_.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt


def parse_datetime(value: str | None) -> tuple[datetime | None, datetime | None] | None:
    """An OGC ``datetime`` parameter: an instant, or an interval ``a/b`` with ``..`` for open ends.

    Returns
    -------
    tuple or None
        (start, end); both equal for an instant; None for no filter.

    Raises
    ------
    ValueError
        On anything that is not RFC 3339.
    """
    if value is None or value.strip() == "":
        return None
    if "/" in value:
        a, b = value.split("/", 1)
        start = None if a.strip() in _OPEN else _instant(a)
        end = None if b.strip() in _OPEN else _instant(b)
        if start and end and start > end:
            raise ValueError("datetime interval ends before it starts")
        return start, end
    t = _instant(value)
    return t, t


# -- queries ---------------------------------------------------------------------------------------
def _where(coll: Collection, bbox: BBox | None, when, village_id: int | None) -> tuple[str, dict]:
    # :tz — a population year starts on January 1st of the display zone
    conds, params = [], {"tz": zone_name()}
    if bbox is not None:
        conds.append(f"x.geom && ST_MakeEnvelope(:w, :s, :e, :n, {STORAGE_SRID})"
                     f" AND ST_Intersects(x.geom, ST_MakeEnvelope(:w, :s, :e, :n, {STORAGE_SRID}))")
        params.update(w=bbox[0], s=bbox[1], e=bbox[2], n=bbox[3])
    if when is not None and coll.temporal:
        start, end = when
        if end is not None:
            conds.append("x.t0 <= :t_end")
            params["t_end"] = end
        if start is not None:
            conds.append("(x.t1 IS NULL OR x.t1 > :t_start OR (x.t1 = x.t0 AND x.t1 >= :t_start))")
            params["t_start"] = start
    elif coll.current:
        conds.append(coll.current.format(sql=coll.sql))
    if village_id is not None:
        conds.append("x.village_id = :village_id")
        params["village_id"] = village_id
    return (" WHERE " + " AND ".join(conds)) if conds else "", params


def items(session: Session, coll: Collection, bbox: BBox | None = None, when=None, limit: int | None = 100,
          offset: int = 0, village_id: int | None = None, precision: int = 7) -> tuple[list[dict], int]:
    """One page of a collection's features as GeoJSON dicts, and how many match in all.

    Parameters
    ----------
    session : sqlalchemy.orm.Session
        A scoped session (RLS applies).
    coll : Collection
    bbox : tuple, optional
        (w, s, e, n) in lon/lat.
    when : tuple, optional
        (start, end) from :func:`parse_datetime`; only for temporal collections.
    limit : int or None
        Page size (None: everything, for exports).
    offset : int
        Features to skip.
    village_id : int, optional
        Only features of this village.
    precision : int
        Decimal places of coordinates.

    Returns
    -------
    tuple of (list of dict, int)
    """
    where, params = _where(coll, bbox, when, village_id)
    page = ""
    if limit is not None:
        page = " LIMIT :limit OFFSET :offset"
        params.update(limit=max(0, min(int(limit), MAX_LIMIT)), offset=max(0, int(offset)))
    rows = session.execute(text(f"""
        SELECT json_build_object('type', 'Feature', 'id', x.id,
                                 'geometry', ST_AsGeoJSON(x.geom, {int(precision)})::json,
                                 'properties', x.props)
          FROM ({coll.sql}) x {where} ORDER BY x.id {page}"""), params).scalars().all()
    count_params = {k: v for k, v in params.items() if k not in ("limit", "offset")}
    if limit is None:
        matched = len(rows)
    else:
        matched = session.execute(text(f"SELECT count(*) FROM ({coll.sql}) x {where}"), count_params).scalar_one()
    return list(rows), int(matched)


def item(session: Session, coll: Collection, feature_id: int, precision: int = 7) -> dict | None:
    """One feature by id (None when it does not exist or lies outside the caller's scope)."""
    return session.execute(text(f"""
        SELECT json_build_object('type', 'Feature', 'id', x.id,
                                 'geometry', ST_AsGeoJSON(x.geom, {int(precision)})::json,
                                 'properties', x.props)
          FROM ({coll.sql}) x WHERE x.id = :id"""), {"id": int(feature_id), "tz": zone_name()}).scalar()


def extent(session: Session, coll: Collection) -> dict:
    """Spatial (and, for temporal layers, temporal) extent of what the caller may see."""
    where = f" WHERE {coll.current.format(sql=coll.sql)}" if coll.current else ""
    row = session.execute(text(f"""
        SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e), t0, t1
          FROM (SELECT ST_Extent(x.geom) AS e, min(x.t0) AS t0, max(coalesce(x.t1, x.t0)) AS t1
                  FROM ({coll.sql}) x {where}) s"""), {"tz": zone_name()}).one()
    out: dict = {}
    if row[0] is not None:
        out["spatial"] = {"bbox": [[row[0], row[1], row[2], row[3]]],
                          "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84"}
    if coll.temporal:
        iv = [row[4].isoformat() if row[4] else None, None if coll.current else (row[5].isoformat() if row[5] else None)]
        out["temporal"] = {"interval": [iv], "trs": "http://www.opengis.net/def/uri/ISO-8601/0/Gregorian"}
    return out


def village_by_code(session: Session, code: str) -> dict | None:
    """id, code, name and bounds of the village with ``code`` (None when unseen)."""
    row = session.execute(text("""
        SELECT v.id, v.code, v.name, t.name AS town, ST_XMin(v.geom) AS w, ST_YMin(v.geom) AS s,
               ST_XMax(v.geom) AS e, ST_YMax(v.geom) AS n
          FROM village v JOIN town t ON t.id = v.town_id WHERE v.code = :c"""), {"c": str(code)}).mappings().first()
    return dict(row) if row else None
