"""``dvmap analyze``: the planners' analyses from the command line, on the database or on files.

    dvmap analyze hotspots  [--input FILE [--value COL]] [--category 01] [--days 90] [--unit h3|grid] ...
    dvmap analyze clusters  [--input FILE] --eps 300 --min-points 10 ...
    dvmap analyze coverage  [--input POP.gpkg --value total --facilities FAC.gpkg] --type elderly_care ...
    dvmap analyze zonal     (--raster-id N | --raster FILE [--input ZONES.gpkg]) --level village ...
    dvmap analyze demo-events [--n 1500] [--seed 7]
    dvmap analyze demo-raster [--seed 11]

Every analysis writes ``--out`` (.gpkg, .geojson, .csv or .html, by its suffix) and prints a
summary. Bad input ends with one bilingual line and exit status 2.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

SUFFIX_FORMAT = {".gpkg": "gpkg", ".geojson": "geojson", ".json": "geojson", ".csv": "csv", ".html": "html"}


def _fail(message: str, code: int = 2) -> None:
    click.echo(f"dvmap analyze: {message}", err=True)
    sys.exit(code)


def _session():
    from map_app.cli import _check_db, _resolve

    from geodata.db import SYSTEM, make_engine, make_sessionmaker, scoped

    url = _resolve("app")
    _check_db(url)
    return scoped(make_sessionmaker(make_engine(url)), SYSTEM)


def _format(out: str) -> str:
    fmt = SUFFIX_FORMAT.get(Path(out).suffix.lower())
    if fmt is None:
        _fail(f"输出文件须为 .gpkg/.geojson/.csv/.html / --out must end in .gpkg, .geojson, .csv or .html: {out}")
    return fmt


def _finish(result, out: str, fmt: str) -> None:
    from geodata.analysis.export import export_result

    export_result(result, fmt, out)
    summary = {k: v for k, v in result.summary.items() if not isinstance(v, (dict, list))}
    click.echo(f"{result.title_zh} / {result.title_en}")
    click.echo(json.dumps(summary, ensure_ascii=False, default=str))
    for zh, en in result.notes:
        click.echo(f"  {zh} / {en}")
    click.echo(f"wrote {out}")


def _run(fn):
    from geodata.analysis.errors import AnalysisError

    try:
        return fn()
    except AnalysisError as exc:
        _fail(f"{exc.message_zh} / {exc.message_en}")


def _filter(categories, days, villages):
    from geodata.analysis.selection import EventFilter

    return EventFilter.last_days(days, tuple(categories), tuple(villages))


@click.group("analyze")
def analyze() -> None:
    """空间分析 / Spatial analysis: hotspots, clusters, coverage, zonal statistics."""


_out = click.option("--out", required=True, help="Output file: .gpkg, .geojson, .csv or .html.")
_input = click.option("--input", "input_", default=None, type=click.Path(exists=True, dir_okay=False),
                      help="A point/polygon file instead of the database.")
_cat = click.option("--category", "categories", multiple=True, help="Event class (2 digits) or subclass (4); repeatable.")
_days = click.option("--days", default=90, show_default=True, type=click.IntRange(1, 3650), help="Last N days.")
_vil = click.option("--village", "villages", multiple=True, type=int, help="Village id; repeatable.")


@analyze.command("hotspots")
@_out
@_input
@click.option("--value", default=None, help="Polygon files: the numeric column.")
@_cat
@_days
@_vil
@click.option("--unit", type=click.Choice(["h3", "grid"]), default="h3", show_default=True)
@click.option("--resolution", default=8, show_default=True, type=int, help="H3 resolution 6–9.")
@click.option("--weights", type=click.Choice(["queen", "distance"]), default="queen", show_default=True)
@click.option("--band", "band_m", default=None, type=float, help="Distance band in metres (distance weights).")
@click.option("--transform", type=click.Choice(["R", "B"]), default="R", show_default=True)
@click.option("--permutations", default=999, show_default=True, type=int)
@click.option("--seed", default=42, show_default=True, type=int)
@click.option("--fdr", is_flag=True, help="Benjamini-Hochberg FDR correction.")
def hotspots_cmd(out, input_, value, categories, days, villages, unit, resolution, weights, band_m, transform,
                 permutations, seed, fdr):
    """Getis-Ord Gi* hot spots of events (or of a file)."""
    fmt = _format(out)
    kw = dict(resolution=resolution, weights=weights, band_m=band_m, transform=transform,
              permutations=permutations, seed=seed, fdr=fdr)
    if input_:
        from etl.analysis_export import read_features
        from etl.analysis_files import hotspots_file

        result = _run(lambda: hotspots_file(read_features(input_), value=value, **kw))
    else:
        from geodata.analysis.hotspots import hotspots

        with _session() as s:
            result = _run(lambda: hotspots(s, _filter(categories, days, villages), unit=unit, **kw))
    _finish(result, out, fmt)


@analyze.command("clusters")
@_out
@_input
@_cat
@_days
@_vil
@click.option("--eps", "eps_m", required=True, type=float, help="Neighbourhood radius in metres (> 0).")
@click.option("--min-points", default=10, show_default=True, type=int)
def clusters_cmd(out, input_, categories, days, villages, eps_m, min_points):
    """DBSCAN density clusters (PostGIS ST_ClusterDBSCAN, EPSG:4549)."""
    fmt = _format(out)
    with _session() as s:
        if input_:
            from etl.analysis_export import read_features
            from etl.analysis_files import clusters_file

            result = _run(lambda: clusters_file(s, read_features(input_), eps_m, min_points))
        else:
            from geodata.analysis.clusters import event_clusters

            result = _run(lambda: event_clusters(s, _filter(categories, days, villages), eps_m, min_points))
    _finish(result, out, fmt)


@analyze.command("coverage")
@_out
@_input
@click.option("--value", default=None, help="File mode: the population column.")
@click.option("--facilities", default=None, type=click.Path(exists=True, dir_okay=False),
              help="File mode: facility points.")
@click.option("--type", "rtype", default="elderly_care", show_default=True, help="Resource type (database mode).")
@click.option("--distance", "distance_m", default=2000.0, show_default=True, type=float, help="Metres.")
@click.option("--measure", type=click.Choice(["total", "age_60_plus"]), default="total", show_default=True)
@click.option("--level", type=click.Choice(["grid", "village"]), default="grid", show_default=True)
@_vil
def coverage_cmd(out, input_, value, facilities, rtype, distance_m, measure, level, villages):
    """Population within a distance of the nearest facility; uncovered areas."""
    fmt = _format(out)
    if input_:
        from etl.analysis_export import read_features
        from etl.analysis_files import coverage_file

        if not facilities:
            _fail("文件模式需要 --facilities / file mode needs --facilities")
        result = _run(lambda: coverage_file(read_features(input_), value, read_features(facilities), distance_m))
    else:
        from geodata.analysis.coverage import coverage

        with _session() as s:
            result = _run(lambda: coverage(s, rtype, distance_m, measure=measure, level=level, village_ids=villages))
    _finish(result, out, fmt)


@analyze.command("zonal")
@_out
@_input
@click.option("--raster-id", default=None, type=int, help="A registered raster (database mode).")
@click.option("--raster", "raster_file", default=None, type=click.Path(exists=True, dir_okay=False),
              help="A GeoTIFF (file mode).")
@click.option("--level", type=click.Choice(["village", "grid"]), default="village", show_default=True)
@click.option("--band", default=1, show_default=True, type=int)
@click.option("--no-store", is_flag=True, help="Do not store the statistics in the database.")
def zonal_cmd(out, input_, raster_id, raster_file, level, band, no_store):
    """Zonal statistics (sum/mean/max) of a raster per village or grid, or per polygon of a file."""
    fmt = _format(out)
    if raster_file and input_:
        from etl.analysis_export import read_features
        from etl.analysis_files import zonal_file

        result = _run(lambda: zonal_file(raster_file, read_features(input_), band))
    elif raster_id is not None:
        from geodata.analysis.raster import zonal_stats

        with _session() as s:
            result = _run(lambda: zonal_stats(s, raster_id, level=level, band=band, store=not no_store,
                                              computed_by="cli"))
            s.commit()
    else:
        _fail("需要 --raster-id,或 --raster 加 --input / give --raster-id, or --raster with --input")
    _finish(result, out, fmt)


@analyze.command("demo-events")
@click.option("--n", "n", default=1500, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--seed", default=7, show_default=True, type=int)
def demo_events_cmd(n, seed):
    """Report N deterministic demo events over the last 180 days (idempotent per seed)."""
    from etl.demo_events import load_demo_events

    with _session() as s:
        summary = load_demo_events(s, n=n, seed=seed)
        s.commit()
    click.echo(json.dumps(summary))


@analyze.command("demo-raster")
@click.option("--seed", default=11, show_default=True, type=int)
def demo_raster_cmd(seed):
    """Generate and register the demo county's population raster (100 m)."""
    from map_app.cli import _check_db, _resolve

    from etl.demo_raster import load_demo_raster
    from geodata.db import make_engine

    url = _resolve("app")
    _check_db(url)
    with make_engine(url).connect() as conn:
        click.echo(json.dumps(load_demo_raster(conn, seed=seed), ensure_ascii=False))


COMMANDS = [analyze]
