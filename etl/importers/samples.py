"""Sample files as departments send them — good and broken — for tests and trying imports.

``python -m etl.importers.samples OUTDIR`` writes a set around the demo county (Deqing):
a zipped GBK Shapefile of clinics without .cpg, the same in Gauss-Krüger metres without
.prj, a GeoJSON with a bowtie polygon, a CSV in GCJ-02, a zip-slip archive and a zip bomb.
"""
from __future__ import annotations

import json
import stat
import sys
import zipfile
from pathlib import Path

import numpy as np
import shapely
from pyproj import Transformer

from geodata.config import METRIC_SRID, STORAGE_SRID

#: A few places inside Deqing county (lon, lat, CGCS2000) and clinic names.
DEQING_POINTS = [(119.96, 30.54), (119.99, 30.56), (120.02, 30.53), (120.05, 30.58), (120.08, 30.55)]
CLINIC_NAMES = ["新市镇中心卫生院", "乾元镇卫生院", "洛舍镇砂村卫生室", "钟管镇曲溪村卫生室", "禹越镇三林村卫生服务站"]


def shapefile_zip(path: Path, points, props: dict[str, list], encoding: str = "GBK", cpg: bool = True,
                  prj: bool = True, ldid: int | None = 0, crs: str = f"EPSG:{STORAGE_SRID}", geoms=None) -> Path:
    """Write a zipped Shapefile.

    Parameters
    ----------
    path : Path
        The ZIP to write.
    points : list of (x, y)
        Point coordinates (in ``crs``); ignored when ``geoms`` is given.
    props : dict
        Column name → values.
    encoding : str
        Attribute encoding of the .dbf.
    cpg, prj : bool
        Keep the .cpg / .prj files.
    ldid : int or None
        Value for the .dbf language-driver byte (0 = none, as older tools write);
        None leaves what GDAL wrote.
    crs : str
        CRS of the coordinates (written to .prj when kept).
    geoms : list of shapely geometries, optional
        Geometries instead of points.
    """
    import geopandas as gpd
    import pyogrio

    work = path.parent / (path.stem + "_shp")
    work.mkdir(parents=True, exist_ok=True)
    geometry = geoms if geoms is not None else [shapely.Point(x, y) for x, y in points]
    gdf = gpd.GeoDataFrame(props, geometry=geometry, crs=crs)
    shp = work / (path.stem + ".shp")
    pyogrio.write_dataframe(gdf, shp, encoding=encoding)
    if not cpg:
        shp.with_suffix(".cpg").unlink(missing_ok=True)
    if not prj:
        shp.with_suffix(".prj").unlink(missing_ok=True)
    if ldid is not None:
        dbf = shp.with_suffix(".dbf")
        data = bytearray(dbf.read_bytes())
        data[29] = ldid
        dbf.write_bytes(bytes(data))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(work.iterdir()):
            zf.write(f, f.name)
            f.unlink()
    work.rmdir()
    return path


def geojson(path: Path, features: list[tuple[object, dict]], crs_name: str | None = None,
            raw_geometries: list | None = None) -> Path:
    """Write a GeoJSON FeatureCollection; ``raw_geometries`` entries replace geometries verbatim."""
    feats = []
    for i, (geom, props) in enumerate(features):
        g = shapely.geometry.mapping(geom) if geom is not None else None
        if raw_geometries is not None and raw_geometries[i] is not None:
            g = raw_geometries[i]
        feats.append({"type": "Feature", "id": props.get("id", i + 1), "geometry": g, "properties": props})
    doc = {"type": "FeatureCollection", "features": feats}
    if crs_name:
        doc["crs"] = {"type": "name", "properties": {"name": crs_name}}
    path.write_text(json.dumps(doc, ensure_ascii=False, allow_nan=True), encoding="utf-8")
    return path


def csv_points(path: Path, header: list[str], rows: list[list], encoding: str = "utf-8") -> Path:
    """Write a CSV table."""
    import csv
    import io

    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    writer.writerows(rows)
    path.write_bytes(buf.getvalue().encode(encoding))
    return path


def zip_with_entry(path: Path, name: str, data: bytes = b"x", symlink: bool = False) -> Path:
    """A ZIP with one entry of the given (possibly unsafe) name, or a symlink entry."""
    with zipfile.ZipFile(path, "w") as zf:
        info = zipfile.ZipInfo(name)
        if symlink:
            info.create_system = 3
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, data)
    return path


def zip_bomb(path: Path, uncompressed: int = 256 << 20, entries: int = 1) -> Path:
    """A ZIP whose entries are zeros, highly compressed (written in 1 MiB chunks)."""
    chunk = bytes(1 << 20)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for e in range(entries):
            info = zipfile.ZipInfo(f"layer{e}.geojson")
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w", force_zip64=True) as fh:
                left = uncompressed
                while left > 0:
                    n = min(left, len(chunk))
                    fh.write(chunk[:n])
                    left -= n
    return path


def zip_raw(path: Path, entries: list[tuple[str, int, bytes, int, int]]) -> Path:
    """A ZIP written byte by byte, so its headers can say anything.

    Parameters
    ----------
    path : Path
        The ZIP to write.
    entries : list of (name, method, data, crc, declared_size)
        ``data`` is written as it is (already compressed with ``method``: 0 stored,
        8 raw Deflate, 12 bzip2...); ``crc`` and ``declared_size`` go into the headers
        whether true or not.
    """
    import struct

    central = b""
    with open(path, "wb") as fh:
        for name, method, data, crc, declared in entries:
            raw_name = name.encode("utf-8")
            offset = fh.tell()
            fh.write(struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 46, 0x800, method, 0, 0x21, crc, len(data),
                                 declared, len(raw_name), 0) + raw_name)
            fh.write(data)
            central += struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 0x031E, 46, 0x800, method, 0, 0x21, crc,
                                   len(data), declared, len(raw_name), 0, 0, 0, 0, 0o100644 << 16, offset) + raw_name
        start = fh.tell()
        fh.write(central)
        fh.write(struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(entries), len(entries), len(central), start, 0))
    return path


def bzip2_bomb(path: Path, uncompressed: int = 1 << 30, declared: int = 4096,
               name: str = "layer.geojson") -> Path:
    """A ZIP with one bzip2 entry of zeros that declares ``declared`` bytes but expands to
    ``uncompressed`` (1 GiB: about 800 bytes of ZIP). Written in 1 MiB chunks, with the CRC
    of the declared size's zeros, as a forger would."""
    import bz2
    import zlib

    comp = bz2.BZ2Compressor(9)
    chunk = bytes(1 << 20)
    parts = []
    left = uncompressed
    while left > 0:
        n = min(left, len(chunk))
        parts.append(comp.compress(chunk[:n]))
        left -= n
    parts.append(comp.flush())
    return zip_raw(path, [(name, 12, b"".join(parts), zlib.crc32(bytes(declared)), declared)])


def star_polygon(n: int, x: float, y: float, outer: float = 0.02, inner: float = 0.001):
    """A valid polygon of ``n`` vertices zigzagging between two circles around (x, y).

    Every segment's extent overlaps most others', so GEOS's validity check is quadratic:
    100k vertices take ~25 s in shapely and as long again in PostGIS.
    """
    i = np.arange(n)
    a = 2 * np.pi * i / n
    r = np.where(i % 2 == 0, outer, inner)
    return shapely.Polygon(np.column_stack([x + r * np.cos(a), y + r * np.sin(a)]))


def to_gauss_kruger(points, epsg: int = METRIC_SRID) -> list[tuple[float, float]]:
    """CGCS2000 lon/lat → Gauss-Krüger metres (CM 120E by default)."""
    tr = Transformer.from_crs(STORAGE_SRID, epsg, always_xy=True)
    xs, ys = tr.transform(np.array([p[0] for p in points]), np.array([p[1] for p in points]))
    return list(zip(xs.tolist(), ys.tolist()))


def bowtie(x: float, y: float, d: float = 0.01):
    """A self-intersecting 'bowtie' polygon centred near (x, y)."""
    return shapely.Polygon([(x, y), (x + d, y + d), (x + d, y), (x, y + d), (x, y)])


def self_touching(x: float, y: float, d: float = 0.01):
    """A polygon whose shell touches itself at one point (an 'inverted hole')."""
    q = d / 4
    return shapely.Polygon([(x, y), (x + 4 * q, y), (x + 4 * q, y + 4 * q), (x + 2 * q, y + 4 * q),
                            (x + 3 * q, y + 2 * q), (x + q, y + 2 * q), (x + 2 * q, y + 4 * q),
                            (x, y + 4 * q), (x, y)])


def write_all(outdir: Path) -> list[Path]:
    """Write the sample set into ``outdir``."""
    from etl.coords import wgs84_to_gcj02

    outdir.mkdir(parents=True, exist_ok=True)
    props = {"MC": CLINIC_NAMES, "LX": ["卫生院", "卫生院", "卫生室", "卫生室", "卫生室"],
             "CWS": [40, 25, 4, 3, 2], "BH": ["WS001", "WS002", "WS003", "WS004", "WS005"]}
    out = [
        shapefile_zip(outdir / "卫健局_卫生机构_GBK无cpg.zip", DEQING_POINTS, props, cpg=False),
        shapefile_zip(outdir / "clinics_gk_no_prj.zip", to_gauss_kruger(DEQING_POINTS), props, prj=False,
                      crs=f"EPSG:{METRIC_SRID}"),
        geojson(outdir / "broken_polygons.geojson",
                [(bowtie(119.97, 30.55), {"id": "A", "名称": "蝴蝶结"}),
                 (self_touching(120.03, 30.56), {"id": "B", "名称": "自接触环"}),
                 (None, {"id": "C", "名称": "空几何"}),
                 (shapely.Point(120.0, 30.55), {"id": "A", "名称": "重复编号的点"})]),
    ]
    glon, glat = wgs84_to_gcj02(np.array([p[0] for p in DEQING_POINTS]), np.array([p[1] for p in DEQING_POINTS]))
    out.append(csv_points(outdir / "amap_points_gcj02.csv", ["名称", "类型", "高德经度", "高德纬度"],
                          [[n, "便民服务站", x, y] for n, x, y in zip(CLINIC_NAMES, glon, glat)]))
    out.append(zip_with_entry(outdir / "zip_slip.zip", "../../evil.txt"))
    out.append(zip_bomb(outdir / "zip_bomb.zip", 64 << 20))
    return out


if __name__ == "__main__":  # pragma: no cover
    for p in write_all(Path(sys.argv[1] if len(sys.argv) > 1 else "samples")):
        print(p)
