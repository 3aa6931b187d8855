"""``dvmap province-job``: the province-wide binning + hotspot batch job on a local Dask cluster."""
from __future__ import annotations

import click

from geodata.config import METRIC_SRID


@click.command("province-job")
@click.option("--months", default=12, show_default=True, help="Time window: the last N months.")
@click.option("--cell-m", default=1000.0, show_default=True, help=f"Square cell size in metres (EPSG:{METRIC_SRID}).")
@click.option("--workers", default=2, show_default=True, help="Dask worker processes.")
def province_job(months: int, cell_m: float, workers: int) -> None:
    """Bin events per county and cell with Dask, run Gi*, compare with the in-database binning."""
    from etl.province_job import run
    from map_app.cli import _check_db, _resolve

    url = _resolve("owner")
    _check_db(url)
    result = run(url, months=months, cell_m=cell_m, workers=workers)
    for key, value in result.items():
        click.echo(f"  {key}: {value}")
    if result["mismatched_cells"]:
        raise SystemExit(1)


COMMANDS = [province_job]
