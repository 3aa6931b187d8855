"""Readers: from a file on disk to batches of features (row, id, geometry, attributes).

Supported: Shapefile (normally inside a ZIP), GeoPackage (layer choice), GeoJSON,
CSV and XLSX tables with longitude/latitude columns (names in Chinese or English),
and GeoTIFF (see :mod:`etl.importers.raster`). Readers never raise anything but
:class:`~etl.importers.errors.ImportRejected` for a bad file; a bad *feature* comes out
as a :class:`Feature` with ``error`` set, so the report can say which row and why.
"""
from __future__ import annotations

import csv
import io
import json
import math
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Iterator

import numpy as np
import shapely
from shapely.geometry import shape

from etl.importers.archive import Limits, check_archive, safe_extract
from etl.importers.encoding import EncodingChoice, choose_dbf_encoding, decode_text
from etl.importers.errors import ImportRejected
from geodata.config import WGS84_SRID

VECTOR_EXT = {".shp": "shapefile", ".gpkg": "gpkg", ".geojson": "geojson", ".json": "geojson",
              ".csv": "csv", ".tsv": "csv", ".txt": "csv", ".xlsx": "xlsx"}
RASTER_EXT = {".tif": "geotiff", ".tiff": "geotiff"}
BATCH = 1000


@dataclass
class Feature:
    """One input feature. ``row`` is 1-based in the file; ``error`` = (code, details)."""

    row: int
    fid: str | None
    geom: object
    props: dict
    error: tuple[str, dict] | None = None


@dataclass
class Source:
    """An opened dataset: where it is, what it is, and how to read its features."""

    path: Path
    format: str
    layer: str
    crs: object = None                      # pyproj CRS or None
    encoding: EncodingChoice | None = None
    fields: list[str] = field(default_factory=list)
    count: int | None = None
    datum_hint: str | None = None           # from column names such as 高德经度 / bd09_lat
    has_geometry: bool = True
    _features: object = None

    def features(self, batch: int = BATCH) -> Iterator[list[Feature]]:
        """Yield the features in batches of ``batch``."""
        yield from self._features(batch)


def _plain(value):
    """A JSON-friendly Python value from a numpy/pandas/openpyxl cell."""
    if value is None:
        return None
    if isinstance(value, (np.generic,)):
        value = value.item()
    if isinstance(value, float):
        return None if not math.isfinite(value) else value
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, (str, int, bool)):
        return value
    if isinstance(value, np.datetime64):
        return None if np.isnat(value) else str(value)
    return str(value)


# -- discovering the dataset ---------------------------------------------------
#: What a file's first bytes say it is: (magic, offset, kind, Chinese, English).
_MAGIC = [
    (b"PK\x03\x04", 0, "zip", "ZIP 压缩包", "a ZIP archive"),
    (b"PK\x05\x06", 0, "zip", "ZIP 压缩包", "a ZIP archive"),
    (b"SQLite format 3\x00", 0, "sqlite", "SQLite 数据库(GeoPackage)", "an SQLite database (GeoPackage)"),
    (b"II*\x00", 0, "tiff", "TIFF 图像", "a TIFF image"), (b"MM\x00*", 0, "tiff", "TIFF 图像", "a TIFF image"),
    (b"II+\x00", 0, "tiff", "TIFF 图像", "a TIFF image"), (b"MM\x00+", 0, "tiff", "TIFF 图像", "a TIFF image"),
    (b"\x1f\x8b", 0, "gzip", "gzip 压缩文件", "a gzip file"),
    (b"7z\xbc\xaf\x27\x1c", 0, "7z", "7-Zip 压缩包", "a 7-Zip archive"),
    (b"Rar!\x1a\x07", 0, "rar", "RAR 压缩包", "a RAR archive"),
    (b"\xfd7zXZ\x00", 0, "xz", "xz 压缩文件", "an xz file"),
    (b"1AY&SY", 4, "bzip2", "bzip2 压缩文件", "a bzip2 file"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", 0, "ole", "旧版 Office 文件(如 .xls)", "an old Office file (e.g. .xls)"),
    (b"%PDF", 0, "pdf", "PDF 文档", "a PDF document"),
    (b"\x89PNG", 0, "png", "PNG 图片", "a PNG image"), (b"\xff\xd8\xff", 0, "jpeg", "JPEG 图片", "a JPEG image"),
    (b"\x00\x00\x27\x0a", 0, "shp", "单独的 .shp 文件(缺 .dbf/.shx,请把整套 Shapefile 打成 ZIP)",
     "a bare .shp file (without its .dbf/.shx: zip the whole Shapefile)"),
]
#: What each format's content must be (None: text).
_EXPECTED = {"zip": "zip", "xlsx": "zip", "gpkg": "sqlite", "geotiff": "tiff",
             "shapefile": "shp", "geojson": None, "csv": None}


def sniff_content(head: bytes) -> tuple[str, str, str] | None:
    """What the first bytes of a file say it is: (kind, Chinese name, English name), or None.

    Parameters
    ----------
    head : bytes
        The file's first bytes (16 are enough).
    """
    for magic, offset, kind, zh, en in _MAGIC:
        if head[offset:offset + len(magic)] == magic and (kind != "bzip2" or head[:3] == b"BZh"):
            return kind, zh, en
    if b"\x00" in head and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "binary", "二进制文件(不是文本)", "a binary file (not text)"
    return None


def sniff_format(path: Path) -> str | None:
    """The format of a file: by its extension, confirmed by its content's magic bytes.

    Returns None for an unknown file; raises when the content contradicts the extension.

    Raises
    ------
    ImportRejected
        ``file_misnamed``, naming what the content is (a ZIP named ``.geojson``...).
    """
    ext = path.suffix.lower()
    with open(path, "rb") as fh:
        head = fh.read(16)
    content = sniff_content(head)
    fmt = "zip" if ext == ".zip" else (RASTER_EXT.get(ext) or VECTOR_EXT.get(ext))
    if fmt is None:  # an unknown extension: go by the content where it is unambiguous
        kind = content[0] if content else None
        return {"zip": "zip", "sqlite": "gpkg", "tiff": "geotiff"}.get(kind)
    want = _EXPECTED[fmt]
    kind = content[0] if content else None
    if kind == want:
        return fmt
    if content is not None:
        raise ImportRejected("file_misnamed", what_zh=content[1], what_en=content[2], ext=ext)
    if want is None:
        return fmt
    if fmt == "zip":
        raise ImportRejected("bad_archive", error="not a ZIP file")
    return None


def _candidates(files: list[Path]) -> dict[str, tuple[str, Path]]:
    """Datasets among extracted files: name → (format, path)."""
    out: dict[str, tuple[str, Path]] = {}
    for f in sorted(files):
        ext = f.suffix.lower()
        fmt = VECTOR_EXT.get(ext) or RASTER_EXT.get(ext)
        if fmt is None or (ext == ".txt"):
            continue
        name = f.stem if fmt == "shapefile" else f.name
        out[name] = (fmt, f)
    return out


def locate(path: Path, workdir: Path, layer: str | None, limits: Limits) -> tuple[str, Path, str | None]:
    """Find the one dataset to import in ``path`` (extracting a ZIP into ``workdir``).

    Returns
    -------
    tuple
        (format, path of the dataset, layer within it or None).

    Raises
    ------
    ImportRejected
        Unsupported format, unsafe archive, nothing found, or several datasets and no choice.
    """
    fmt = sniff_format(path)
    if fmt is None:
        raise ImportRejected("unsupported_format", name=path.name)
    if fmt != "zip":
        return fmt, path, layer
    files = safe_extract(path, workdir, limits)
    found = _candidates(files)
    if not found:
        raise ImportRejected("no_dataset")
    if len(found) == 1:
        (name, (fmt, p)), = found.items()
        return fmt, p, (layer if fmt in ("gpkg", "xlsx") else None)
    if layer and layer in found:
        fmt, p = found[layer]
        return fmt, p, None
    if layer:  # "file.gpkg:layer" or a layer inside the only GeoPackage
        gpkgs = [(n, v) for n, v in found.items() if v[0] == "gpkg"]
        if len(gpkgs) == 1:
            return "gpkg", gpkgs[0][1][1], layer
        raise ImportRejected("layer_not_found", layer=layer, layers=", ".join(found))
    raise ImportRejected("choose_layer", layers=", ".join(found))


def list_layers(path: str | Path, workdir: str | Path, limits: Limits | None = None) -> list[str]:
    """Names a person may choose from (Shapefiles in a ZIP, GeoPackage layers, XLSX sheets).

    Parameters
    ----------
    path : str or Path
        The uploaded file.
    workdir : str or Path
        An empty temporary directory for a ZIP's contents.
    limits : Limits
        Archive limits.

    Returns
    -------
    list of str
    """
    path, workdir = Path(path), Path(workdir)
    limits = limits or Limits()
    fmt = sniff_format(path)
    if fmt == "zip":
        found = _candidates(safe_extract(path, workdir, limits))
        if len(found) == 1:
            (name, (fmt, p)), = found.items()
            return _inner_layers(fmt, p, limits) or [name]
        return list(found)
    return _inner_layers(fmt, path, limits) if fmt else []


def _inner_layers(fmt: str, path: Path, limits: Limits) -> list[str]:
    if fmt == "gpkg":
        import pyogrio

        try:
            return [str(r[0]) for r in pyogrio.list_layers(path)]
        except Exception as exc:  # noqa: BLE001 - GDAL raises many kinds; report as unreadable
            raise ImportRejected("unreadable", error=str(exc)[:200]) from None
    if fmt == "xlsx":
        return _xlsx_sheets(path, limits)
    return []


# -- Shapefile and GeoPackage (GDAL through pyogrio) ------------------------------
def _ogr_source(fmt: str, path: Path, layer: str | None, encoding: str | None) -> Source:
    import pyogrio
    from pyproj import CRS

    choice = None
    if fmt == "shapefile":
        missing = [ext for ext in (".shx", ".dbf") if not _sibling(path, ext)]
        if missing:
            raise ImportRejected("shapefile_incomplete", name=path.name, missing=", ".join(missing))
        choice = choose_dbf_encoding(_sibling(path, ".dbf"), _sibling(path, ".cpg"), encoding)
        layer = None
    elif fmt == "gpkg":
        try:
            names = [str(r[0]) for r in pyogrio.list_layers(path)]
        except Exception as exc:  # noqa: BLE001
            raise ImportRejected("unreadable", error=str(exc)[:200]) from None
        if not names:
            raise ImportRejected("no_features")
        if layer is None:
            if len(names) > 1:
                raise ImportRejected("choose_layer", layers=", ".join(names))
            layer = names[0]
        elif layer not in names:
            raise ImportRejected("layer_not_found", layer=layer, layers=", ".join(names))
        choice = EncodingChoice("UTF-8", "gpkg")
    enc = choice.encoding if choice else None
    try:
        info = pyogrio.read_info(path, layer=layer, encoding=enc if fmt == "shapefile" else None)
    except Exception as exc:  # noqa: BLE001
        raise ImportRejected("unreadable", error=str(exc)[:200]) from None
    crs = None
    if info.get("crs"):
        try:
            crs = CRS.from_user_input(info["crs"])
        except Exception:  # noqa: BLE001 - an unreadable .prj is as good as none
            crs = None
    src = Source(path, fmt, layer or path.stem, crs=crs, encoding=choice,
                 fields=[str(f) for f in info["fields"]], count=int(info.get("features") or 0))

    def _read(batch: int):
        done = 0
        total = src.count or 0
        while done < total:
            try:
                _meta, fids, geoms, data = pyogrio.raw.read(
                    path, layer=layer, encoding=enc if fmt == "shapefile" else None,
                    skip_features=done, max_features=batch, return_fids=True)
            except Exception as exc:  # noqa: BLE001
                raise ImportRejected("unreadable", error=str(exc)[:200]) from None
            n = len(fids)
            if n == 0:
                break
            out = []
            for i in range(n):
                props = {name: _plain(col[i]) for name, col in zip(src.fields, data)}
                geom, err = None, None
                wkb = geoms[i] if geoms is not None else None
                if wkb is not None:
                    try:
                        geom = shapely.from_wkb(wkb)
                    except Exception as exc:  # noqa: BLE001 - a broken WKB is one bad feature
                        err = ("bad_geometry", {"error": str(exc)[:200]})
                out.append(Feature(done + i + 1, str(int(fids[i])), geom, props, err))
            done += n
            yield out

    src._features = _read
    return src


def _sibling(path: Path, ext: str) -> Path | None:
    for cand in path.parent.iterdir():
        if cand.stem == path.stem and cand.suffix.lower() == ext:
            return cand
    return None


# -- GeoJSON ----------------------------------------------------------------------
def _json_constant(name: str) -> float:
    return {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}[name]


def parse_geojson(text: str) -> tuple[list[dict], str | None]:
    """Features (as dicts) and the legacy ``crs`` name from GeoJSON text.

    Accepts a FeatureCollection, a single Feature or a bare geometry.

    Raises
    ------
    ImportRejected
        ``unreadable`` when the text is not JSON or not GeoJSON.
    """
    try:
        doc = json.loads(text, parse_constant=_json_constant)
    except (ValueError, RecursionError) as exc:
        raise ImportRejected("unreadable", error=f"JSON: {str(exc)[:160]}") from None
    if not isinstance(doc, dict):
        raise ImportRejected("unreadable", error="GeoJSON must be an object")
    crs_name = None
    crs_member = doc.get("crs")
    if isinstance(crs_member, dict) and isinstance(crs_member.get("properties"), dict):
        name = crs_member["properties"].get("name")
        crs_name = name if isinstance(name, str) else None
    kind = doc.get("type")
    if kind == "FeatureCollection":
        feats = doc.get("features")
        if not isinstance(feats, list):
            raise ImportRejected("unreadable", error="FeatureCollection without a features list")
        return feats, crs_name
    if kind == "Feature":
        return [doc], crs_name
    if kind in ("Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon",
                "GeometryCollection"):
        return [{"type": "Feature", "geometry": doc, "properties": {}}], crs_name
    raise ImportRejected("unreadable", error=f"not GeoJSON (type {str(kind)[:40]!r})")


def geojson_feature(row: int, item) -> Feature:
    """Turn one GeoJSON feature object into a :class:`Feature` (errors become ``error``)."""
    if not isinstance(item, dict):
        return Feature(row, None, None, {}, ("bad_geometry", {"error": "feature is not an object"}))
    props = item.get("properties")
    props = {str(k): _json_value(v) for k, v in props.items()} if isinstance(props, dict) else {}
    fid = item.get("id")
    fid = None if fid is None or isinstance(fid, (dict, list)) else str(fid)
    geo = item.get("geometry")
    if geo is None:
        return Feature(row, fid, None, props)
    try:
        if not isinstance(geo, dict):
            raise ValueError("geometry is not an object")
        geom = shape(geo)
    except Exception as exc:  # noqa: BLE001 - any malformed geometry is one bad feature
        return Feature(row, fid, None, props, ("bad_geometry", {"error": f"{type(exc).__name__}: {str(exc)[:160]}"}))
    return Feature(row, fid, geom, props)


def _json_value(value):
    """Attribute values as JSON can store them: NaN/inf become null."""
    try:
        if isinstance(value, float):
            return value if math.isfinite(value) else None
        if isinstance(value, dict):
            return {str(k): _json_value(v) for k, v in value.items()}
        if isinstance(value, list):
            return [_json_value(v) for v in value]
        return value
    except RecursionError:
        return None


def _geojson_source(path: Path, encoding: str | None) -> Source:
    from pyproj import CRS

    text, choice = decode_text(path.read_bytes(), encoding)
    items, crs_name = parse_geojson(text)
    crs = None
    if crs_name:
        try:
            crs = CRS.from_user_input(crs_name)
        except Exception:  # noqa: BLE001
            raise ImportRejected("crs_invalid", crs=crs_name[:80]) from None
    else:
        crs = CRS.from_epsg(WGS84_SRID)  # RFC 7946: GeoJSON is WGS84 lon/lat
    fields: list[str] = []
    for it in items[:1000]:
        if isinstance(it, dict) and isinstance(it.get("properties"), dict):
            for k in it["properties"]:
                if str(k) not in fields:
                    fields.append(str(k))
    src = Source(path, "geojson", path.stem, crs=crs, encoding=choice, fields=fields, count=len(items))

    def _read(batch: int):
        for start in range(0, len(items), batch):
            yield [geojson_feature(start + i + 1, it) for i, it in enumerate(items[start:start + batch])]

    src._features = _read
    return src


# -- CSV and XLSX tables ---------------------------------------------------------------
_LON = {"经度", "东经", "lon", "lng", "long", "longitude", "x", "x坐标", "横坐标", "pointx", "xcoord",
        "coordx", "东坐标", "jd", "经度坐标"}
_LAT = {"纬度", "北纬", "lat", "latitude", "y", "y坐标", "纵坐标", "pointy", "ycoord", "coordy",
        "北坐标", "wd", "纬度坐标"}
_DATUM_WORDS = [("gcj02", "gcj02"), ("gcj", "gcj02"), ("高德", "gcj02"), ("火星", "gcj02"), ("腾讯", "gcj02"),
                ("bd09", "bd09"), ("百度", "bd09"), ("baidu", "bd09"), ("bd", "bd09"),
                ("wgs84", None), ("cgcs2000", None), ("2000", None)]


def normalise_header(name) -> str:
    """Lower-case, without spaces/underscores/hyphens and without a bracketed unit."""
    text = str(name if name is not None else "").strip().lower()
    text = re.sub(r"[\(（\[【].*?[\)）\]】]", "", text)
    return re.sub(r"[\s_\-.:：/]+", "", text)


def find_xy_columns(headers: list[str]) -> tuple[int | None, int | None, str | None, bool]:
    """Indexes of the longitude and latitude columns, a datum named by them, and whether
    they were named as degrees (经度/纬度, lon/lat) rather than plain x/y."""
    lon = lat = None
    datum = None
    named_degrees = False
    for i, h in enumerate(headers):
        norm = normalise_header(h)
        col_datum = None
        for word, dat in _DATUM_WORDS:
            if word in norm and norm != word:
                stripped = norm.replace(word, "")
                if stripped in _LON or stripped in _LAT:
                    norm, col_datum = stripped, dat
                    break
        if norm in _LON and lon is None:
            lon, datum = i, datum or col_datum
            named_degrees = named_degrees or norm not in ("x", "x坐标", "横坐标", "pointx", "xcoord", "coordx", "东坐标")
        elif norm in _LAT and lat is None:
            lat, datum = i, datum or col_datum
    return lon, lat, datum, named_degrees


def _number(value) -> float | None:
    """A coordinate cell as a float (None when blank); raises ValueError when not a number."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError("boolean")
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip().rstrip("°").strip()
    if text == "":
        return None
    return float(text)


def _table_features(headers: list[str], rows, lon: int | None, lat: int | None, start_row: int = 2):
    """Features from table rows; ``start_row`` is the file row of the first data row."""
    keys = []
    for i, h in enumerate(headers):
        k = str(h).strip() if h is not None and str(h).strip() else f"column_{i + 1}"
        while k in keys:
            k += "_"
        keys.append(k)
    for n, row in enumerate(rows):
        row = list(row)
        if not any(v not in (None, "") for v in row):
            continue
        props = {k: _plain(row[i]) if i < len(row) else None
                 for i, k in enumerate(keys) if i not in (lon, lat)}
        geom, err = None, None
        if lon is not None and lat is not None:
            xs = row[lon] if lon < len(row) else None
            ys = row[lat] if lat < len(row) else None
            try:
                x, y = _number(xs), _number(ys)
            except (ValueError, TypeError, OverflowError):
                bad = xs if not _is_number(xs) else ys
                err = ("bad_coordinate", {"value": str(bad)[:40]})
            else:
                if x is not None and y is not None:
                    geom = shapely.Point(x, y)
        yield Feature(start_row + n, None, geom, props, err)


def _is_number(value) -> bool:
    try:
        _number(value)
        return True
    except (ValueError, TypeError, OverflowError):
        return False


def read_csv_text(text: str) -> tuple[list[str], list[list[str]]]:
    """Header and rows of CSV/TSV text (delimiter sniffed among , ; tab |).

    Raises
    ------
    ImportRejected
        ``unreadable`` when the text is not a table.
    """
    csv.field_size_limit(16 << 20)
    sample = text[:65536]
    delimiter = ","
    try:
        delimiter = csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        pass
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    except csv.Error as exc:
        raise ImportRejected("unreadable", error=f"CSV: {str(exc)[:160]}") from None
    while rows and not any(c.strip() for c in rows[0]):
        rows.pop(0)
    if not rows:
        raise ImportRejected("no_features")
    return rows[0], rows[1:]


def _table_source(path: Path, fmt: str, headers: list[str], rows, count: int | None, layer: str,
                  encoding: EncodingChoice | None, need_xy: bool, start_row: int = 2) -> Source:
    lon, lat, datum, _named = find_xy_columns(headers)
    if need_xy and (lon is None or lat is None):
        raise ImportRejected("no_columns", columns=", ".join(str(h) for h in headers[:30]))
    fields = [str(h) for i, h in enumerate(headers) if i not in (lon, lat)]
    src = Source(path, fmt, layer, crs=None, encoding=encoding, fields=fields, count=count,
                 datum_hint=datum, has_geometry=lon is not None and lat is not None)

    def _read(batch: int):
        buf = []
        for feat in _table_features(headers, rows, lon, lat, start_row):
            buf.append(feat)
            if len(buf) >= batch:
                yield buf
                buf = []
        if buf:
            yield buf

    src._features = _read
    return src


def read_csv_source(path: Path, encoding: str | None, need_xy: bool = True) -> Source:
    """A :class:`Source` for a CSV file (encoding detected: BOM, UTF-8, GBK, GB18030)."""
    text, choice = decode_text(path.read_bytes(), encoding)
    headers, rows = read_csv_text(text)
    return _table_source(path, "csv", headers, rows, len(rows), path.stem, choice, need_xy)


def _xlsx_book(path: Path, limits: Limits):
    check_archive(path, limits)  # an XLSX is a ZIP: the same bomb checks first
    try:
        import openpyxl

        return openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # noqa: BLE001 - openpyxl raises many kinds on a bad file
        raise ImportRejected("unreadable", error=f"XLSX: {str(exc)[:160]}") from None


def _xlsx_sheets(path: Path, limits: Limits) -> list[str]:
    book = _xlsx_book(path, limits)
    try:
        names = []
        for ws in book.worksheets:
            for row in ws.iter_rows(max_row=2, values_only=True):
                if any(v not in (None, "") for v in row):
                    names.append(ws.title)
                    break
        return names
    finally:
        book.close()


def read_xlsx_source(path: Path, sheet: str | None, limits: Limits, need_xy: bool = True) -> Source:
    """A :class:`Source` for one sheet of an XLSX workbook (the only non-empty one by default)."""
    names = _xlsx_sheets(path, limits)
    if not names:
        raise ImportRejected("no_features")
    if sheet is None:
        if len(names) > 1:
            raise ImportRejected("choose_layer", layers=", ".join(names))
        sheet = names[0]
    elif sheet not in names:
        raise ImportRejected("layer_not_found", layer=sheet, layers=", ".join(names))
    book = _xlsx_book(path, limits)
    ws = book[sheet]
    it = ws.iter_rows(values_only=True)
    headers: list = []
    header_row = 0
    for header_row, row in enumerate(it, start=1):
        if any(v not in (None, "") for v in row):
            headers = [("" if v is None else str(v)) for v in row]
            break
    count = max((ws.max_row or 0) - header_row, 0) or None
    src = _table_source(path, "xlsx", headers, it, count, sheet, EncodingChoice("UTF-8", "xlsx"), need_xy,
                        start_row=header_row + 1)
    inner = src._features

    def _read(batch: int):
        try:
            yield from inner(batch)
        except ImportRejected:
            raise
        except Exception as exc:  # noqa: BLE001
            raise ImportRejected("unreadable", error=f"XLSX: {str(exc)[:160]}") from None
        finally:
            book.close()

    src._features = _read
    return src


# -- entry point ------------------------------------------------------------------------
def open_vector(fmt: str, path: Path, layer: str | None, encoding: str | None, limits: Limits,
                need_xy: bool = True) -> Source:
    """Open a vector dataset found by :func:`locate`.

    Parameters
    ----------
    fmt : str
        'shapefile', 'gpkg', 'geojson', 'csv' or 'xlsx'.
    path : Path
        The dataset's file.
    layer : str or None
        GeoPackage layer or XLSX sheet.
    encoding : str or None
        Encoding named by the person importing (Shapefile, CSV, GeoJSON).
    limits : Limits
        Archive limits (an XLSX is checked like a ZIP).
    need_xy : bool
        Tables must have coordinate columns (False for population tables keyed by code).

    Returns
    -------
    Source
    """
    if fmt in ("shapefile", "gpkg"):
        return _ogr_source(fmt, path, layer, encoding)
    if fmt == "geojson":
        return _geojson_source(path, encoding)
    if fmt == "csv":
        return read_csv_source(path, encoding, need_xy)
    if fmt == "xlsx":
        return read_xlsx_source(path, layer, limits, need_xy)
    raise ImportRejected("unsupported_format", name=path.name)
