"""The generator: one pure function from a seed to a :class:`DemoCounty`.

:class:`_Generator` holds the random streams (one per stage, so a change in one
stage does not reshuffle the others) and the metric geometries the stages hand
on; the stages themselves live with their subject (:mod:`etl.demo.areas`,
:mod:`etl.demo.people`, :mod:`etl.demo.resources`, :mod:`etl.demo.sensors`).
"""
from __future__ import annotations

from datetime import datetime
from typing import Mapping

import numpy as np

from etl.demo.areas import _Areas
from etl.demo.county import DemoCounty
from etl.demo.geometry import _TO_METRIC, _TO_STORAGE, _hilliness
from etl.demo.people import _People
from etl.demo.resources import _Resources
from etl.demo.sensors import _Sensors
from etl.demo.spec import REFERENCE_NOW, SENSOR_TYPES, ZONE, TOWNS


def generate_county(
    seed: int = 42,
    *,
    now: datetime | None = None,
    sensor_densities: Mapping[str, int] | None = None,
) -> DemoCounty:
    """Generate the demo county, deterministically from ``seed``.

    Parameters
    ----------
    seed : int
        Seed of ``numpy.random.default_rng``; the same seed (and ``now``)
        gives identical output.
    now : datetime, optional
        Timezone-aware moment the 24 hourly readings end at. Defaults to the
        fixed :data:`REFERENCE_NOW`, so that the function stays pure;
        :func:`load_demo` passes the load time.
    sensor_densities : mapping of str to int, optional
        Sensors per 100,000 people by type code (the ``sensor_type.per_100k``
        column). Defaults to the densities of :data:`SENSOR_TYPES`; types the
        generator has no value model for are ignored.

    Returns
    -------
    DemoCounty
        The county, towns, villages, grids, people, population, resources,
        sensors and readings in the storage CRS.

    Raises
    ------
    ValueError
        If ``seed`` is negative, ``now`` is naive, or a density is negative.
    """
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"种子必须是非负整数 / seed must be a non-negative integer, got {seed!r}")
    now = REFERENCE_NOW if now is None else now
    if now.tzinfo is None:
        raise ValueError("now 必须带时区 / now must be timezone-aware")
    if sensor_densities is None:
        densities = {code: spec.per_100k for code, spec in SENSOR_TYPES.items()}
    else:
        densities = {code: int(n) for code, n in sensor_densities.items() if code in SENSOR_TYPES}
        if any(n < 0 for n in densities.values()):
            raise ValueError("传感器密度不能为负 / sensor densities must be >= 0")
    return _Generator(int(seed), now.astimezone(ZONE), densities).run()


class _Generator(_Areas, _People, _Resources, _Sensors):
    """Builds a :class:`DemoCounty`; one method per stage, each with its own rng stream."""

    def __init__(self, seed: int, now: datetime, densities: dict[str, int]):
        self.seed = seed
        self.now = now
        self.densities = densities
        streams = np.random.default_rng(seed).spawn(9)
        (self.rng_county, self.rng_towns, self.rng_villages, self.rng_grids, self.rng_names,
         self.rng_pop, self.rng_res, self.rng_sensors, self.rng_readings) = streams
        self.used_names: set[str] = set()
        self.used_people: set[str] = set()
        self.used_phones: set[str] = set()
        seats = np.array([[t[3], t[4]] for t in TOWNS])
        self.seat_xy = np.column_stack(_TO_METRIC.transform(seats[:, 0], seats[:, 1]))
        self.seat_peak = np.array([t[5] for t in TOWNS])
        self.seat_sigma = np.array([t[6] for t in TOWNS]) * 1000.0

    # -- density of people, in metric coordinates -----------------------------
    def density(self, xy: np.ndarray) -> np.ndarray:
        """Relative density of people at metric points: thinner in the hills, peaks at town seats."""
        lon, lat = _TO_STORAGE.transform(xy[:, 0], xy[:, 1])
        base = np.exp(-1.6 * _hilliness(lon, lat))
        d2 = ((xy[:, None, :] - self.seat_xy[None, :, :]) ** 2).sum(-1)
        peaks = (self.seat_peak * np.exp(-d2 / (2 * self.seat_sigma ** 2))).sum(axis=1)
        return base + peaks

    def run(self) -> DemoCounty:
        """All stages in their fixed order (the order is part of the output)."""
        county = self.make_county()
        towns = self.make_towns()
        villages = self.make_villages(towns)
        grids = self.make_grids(villages)
        county, towns, villages = self.nest(county, towns, villages, grids)
        people = self.make_people(villages, grids)
        population = self.make_population(villages, grids)
        resources = self.make_resources(towns, villages)
        sensors, readings = self.make_sensors(villages, grids, population)
        return DemoCounty(
            seed=self.seed, now=self.now, county=county, towns=towns, villages=villages, grids=grids,
            people=people, population=population, resources=resources, sensors=sensors,
            readings=readings, sensor_densities=dict(self.densities),
        )
