"""``dvmap import`` and ``dvmap export``: departments' files in, the map's layers out.

Attach to the main group in map_app/cli.py with::

    from map_app.cli_io import attach_io_commands; attach_io_commands(main)  # noqa: E702

Both run as the schema owner (like ``dvmap demo-data``) with the county scope; row-level
security still applies. ``dvmap export --village CODE`` narrows the scope to that village.
"""
from __future__ import annotations

import sys
from pathlib import Path

import click

from geodata.config import METRIC_SRID

TARGET_CHOICES = ("villages", "grids", "resources", "population", "sensors", "custom", "raster")
EXPORT_FORMATS = ("geojson", "gpkg", "shp", "csv", "html")


def _engine():
    from geodata.db import make_engine
    from map_app.cli import _check_db, _resolve

    url = _resolve("owner")
    _check_db(url)
    return make_engine(url, pool_size=2, max_overflow=2)


class _Progress:
    """Prints ``stage done/total (pct)`` on one line of stderr while an import runs."""

    NAMES = {"hash": ("计算文件摘要", "hashing"), "read": ("读取", "reading"), "validate": ("校验数据", "validating"),
             "merge": ("写入", "writing"), "done": ("完成", "done")}

    def __init__(self, lang: str, enabled: bool):
        self.lang, self.enabled, self.last = lang, enabled, ""

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        if not self.enabled:
            return
        zh, en = self.NAMES.get(stage, (stage, stage))
        name = en if self.lang == "en" else zh
        if total:
            pct = min(100, int(100 * done / total)) if total else 0
            bar = "#" * (pct // 5) + "-" * (20 - pct // 5)
            line = f"{name} [{bar}] {done}/{total} ({pct}%)"
        else:
            line = f"{name} {done}" if done else name
        if line != self.last:
            click.echo("\r" + line.ljust(60), nl=(stage == "done"), err=True)
            self.last = line


@click.command("import")
@click.argument("file", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--to", "target", type=click.Choice(TARGET_CHOICES), help="Where the data goes.")
@click.option("--layer", help="Shapefile in a ZIP, GeoPackage layer or XLSX sheet to read.")
@click.option("--name", "layer_name", help="Custom layer / raster name (a-z, 0-9, _).")
@click.option("--title-zh", help="Custom layer title in Chinese.")
@click.option("--title-en", help="Custom layer title in English.")
@click.option("--source", help="Resources: dataset name; re-importing the same source replaces its rows.")
@click.option("--crs", help=f"CRS when the file has none or a wrong one (EPSG:{METRIC_SRID}, WKT, gcj02, bd09).")
@click.option("--datum", type=click.Choice(["gcj02", "bd09"]), help="The coordinates are GCJ-02 / BD-09.")
@click.option("--swap-axes", is_flag=True, help="Confirm that x and y (lon and lat) are swapped in the file.")
@click.option("--encoding", help="Attribute text encoding (e.g. GBK) when .cpg and detection are wrong.")
@click.option("--resource-type", help="Resources: one type for all (school, clinic, ...).")
@click.option("--sensor-type", help="Sensors: one type for all (manhole, smoke, ...).")
@click.option("--year", type=int, help="Population: the year, when the table has no year column.")
@click.option("--field", "fields", multiple=True, metavar="LOGICAL=COLUMN",
              help="Which column holds name/code/type/capacity/address/year/total/... (repeatable).")
@click.option("--strict", is_flag=True, help="Refuse the whole file if any feature is rejected.")
@click.option("--list-layers", is_flag=True, help="List the layers/sheets in FILE and stop.")
@click.option("--show", "show_id", type=int, help="Print saved report ID and stop.")
@click.option("--recent", is_flag=True, help="List the latest import reports and stop.")
@click.option("--lang", type=click.Choice(["zh", "en"]), default="zh", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--quiet", is_flag=True, help="No progress output.")
def import_command(file, target, layer, layer_name, title_zh, title_en, source, crs, datum, swap_axes, encoding,
                   resource_type, sensor_type, year, fields, strict, list_layers, show_id, recent, lang, as_json,
                   quiet):
    """Import FILE (zipped Shapefile, GeoPackage, GeoJSON, CSV/XLSX, GeoTIFF) into a layer.

    \b
    Examples:
      dvmap import 卫生室.zip --to resources --source 卫健局-卫生室
      dvmap import wells.gpkg --to custom --layer wells --name wells --title-zh 水井
      dvmap import 网格.zip --to grids --crs EPSG:4549
      dvmap import dem.tif --to raster --name dem
    The exit status is 0 when imported (or already imported), 2 when refused, 1 on failure.
    """
    from etl.importers import ImportOptions, get_report, import_file, recent_reports
    from geodata.db import SYSTEM, apply_scope

    if show_id is not None or recent:
        engine = _engine()
        with engine.connect() as conn:
            apply_scope(conn, SYSTEM)
            if recent:
                from geodata.clock import fmt_local

                for r in recent_reports(conn, 20):
                    click.echo(f"#{r.id} {fmt_local(r.started_at, '%Y-%m-%d %H:%M:%S')} " + r.summary(lang))
                return
            report = get_report(conn, show_id)
        if report is None:
            raise click.ClickException(f"no report #{show_id}")
        _print_report(report, lang, as_json)
        return
    if file is None:
        raise click.UsageError("FILE is needed (or --show/--recent).")
    if list_layers:
        import tempfile

        from etl.importers import ImportRejected, list_layers as _list

        with tempfile.TemporaryDirectory(prefix="dvmap-import-") as tmp:
            try:
                for name in _list(file, tmp):
                    click.echo(name)
            except ImportRejected as exc:
                raise click.ClickException(exc.message(lang)) from None
        return
    if target is None:
        raise click.UsageError("--to TARGET is needed: " + ", ".join(TARGET_CHOICES))
    field_map = {}
    for item in fields:
        if "=" not in item:
            raise click.UsageError(f"--field needs LOGICAL=COLUMN, got {item!r}")
        k, v = item.split("=", 1)
        field_map[k.strip()] = v.strip()
    options = ImportOptions(layer=layer, layer_name=layer_name, title_zh=title_zh, title_en=title_en, source=source,
                            crs=crs, datum=datum, swap_axes=swap_axes, encoding=encoding,
                            resource_type=resource_type, sensor_type=sensor_type, year=year, field_map=field_map,
                            strict=strict, created_by="cli")
    engine = _engine()
    progress = _Progress(lang, enabled=not quiet and not as_json)
    try:
        report = import_file(file, target, engine, scope=SYSTEM, options=options, progress=progress)
    finally:
        engine.dispose()
    _print_report(report, lang, as_json)
    if report.status == "refused":
        sys.exit(2)
    if report.status == "failed":
        sys.exit(1)


def _print_report(report, lang: str, as_json: bool) -> None:
    if as_json:
        click.echo(report.to_json())
        return
    lines = report.lines(lang, max_issues=100)
    if report.id:
        lines[0] = f"#{report.id} " + lines[0]
    for line in lines:
        click.echo(line)


@click.command("export")
@click.argument("layer", required=False)
@click.option("--format", "fmt", type=click.Choice(EXPORT_FORMATS), default="gpkg", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="File to write.")
@click.option("--village", "village_code", help="Only this village (12-digit code); scopes access to it too.")
@click.option("--bbox", help="west,south,east,north (lon/lat).")
@click.option("--datetime", "when", help="RFC 3339 instant or interval a/b (grids, sensors, population, events).")
@click.option("--list", "list_layers", is_flag=True, help="List the layers that can be exported.")
def export_command(layer, fmt, output, village_code, bbox, when, list_layers):
    """Export LAYER (villages, grids, resources, sensors, population, towns, events or a custom layer).

    \b
    Examples:
      dvmap export resources --format shp -o resources.zip
      dvmap export --village 330521101001 --format gpkg -o village.gpkg
      dvmap export --village 330521101001 --format html -o village.html
    """
    from etl.export import ExportError, export_layer, export_village
    from geodata import export as gx
    from geodata.db import SYSTEM, Scope, make_sessionmaker, scoped

    engine = _engine()
    factory = make_sessionmaker(engine)
    try:
        with scoped(factory, SYSTEM) as s:
            if list_layers:
                for c in gx.collections(s):
                    click.echo(f"{c.id:<20} {c.title_zh} / {c.title_en}")
                return
            village = gx.village_by_code(s, village_code) if village_code else None
        if village_code and village is None:
            raise click.ClickException(f"no village with code {village_code}")
        scope = Scope.villages([village["id"]], "export") if village else SYSTEM
        try:
            box = gx.parse_bbox(bbox)
            interval = gx.parse_datetime(when)
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
        with scoped(factory, scope) as s:
            try:
                if layer is None or fmt == "html":
                    if village is None:
                        raise click.UsageError("give a LAYER, or --village CODE for the whole village")
                    if fmt not in ("gpkg", "html"):
                        raise click.UsageError("a whole village exports as --format gpkg or html")
                    out = output or Path(f"{village_code}.{fmt}")
                    result = export_village(s, village_code, fmt, out)
                else:
                    if fmt == "html":
                        raise click.UsageError("html is for a village map: use --village CODE")
                    out = output or Path(layer + {"geojson": ".geojson", "gpkg": ".gpkg", "shp": ".zip",
                                                  "csv": ".csv"}[fmt])
                    result = export_layer(s, layer, fmt, out, bbox=box, when=interval,
                                          village_id=village["id"] if village else None)
            except ExportError as exc:
                raise click.ClickException(str(exc)) from None
        click.echo(f"{result.path}: " + ", ".join(f"{k} {v}" for k, v in result.counts.items()))
    finally:
        engine.dispose()


def attach_io_commands(group: click.Group) -> None:
    """Add ``import`` and ``export`` to the ``dvmap`` group."""
    group.add_command(import_command, "import")
    group.add_command(export_command, "export")


__all__ = ["attach_io_commands", "import_command", "export_command", "COMMANDS"]

#: picked up by map_app.cli (dvmap import / dvmap export)
COMMANDS = [import_command, export_command]
