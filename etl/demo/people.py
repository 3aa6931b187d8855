"""Generator stages for people: village officials and grid workers, and population per grid."""
from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd

from etl.demo.geometry import _TO_STORAGE, _apportion, _hilliness
from etl.demo.names import _person_name, _phone
from etl.demo.spec import POPULATION_YEAR


class _People:
    """Stages of :class:`etl.demo.generator._Generator` for people and population."""

    def make_people(self, villages: gpd.GeoDataFrame, grids: gpd.GeoDataFrame) -> pd.DataFrame:
        """One official per village and one worker per grid, with unique names and phones."""
        rng = self.rng_names
        rows = []
        for v in villages.itertuples():
            rows.append({"key": f"O{v.code}", "village_code": v.code, "duty": "village_official"})
        for g in grids.itertuples():
            rows.append({"key": g.worker_key, "village_code": g.village_code, "duty": "grid_worker"})
        for r in rows:
            r["name"] = _person_name(rng, self.used_people)
            r["phone"] = _phone(rng, self.used_phones)
        return pd.DataFrame(rows, columns=["key", "village_code", "name", "duty", "phone"])

    # -- population --------------------------------------------------------------
    def make_population(self, villages: gpd.GeoDataFrame, grids: gpd.GeoDataFrame) -> pd.DataFrame:
        """Population per grid and per village (the village row is the sum of its grids)."""
        rng = self.rng_pop
        grid_rows = []
        village_rows = []
        by_village = grids.groupby("village_code", sort=False).indices
        for v, vrow in enumerate(villages.itertuples()):
            idx = by_village[vrow.code]
            metric = [self.grids_m[i] for i in idx]
            centres = np.array([[c.centroid.x, c.centroid.y] for c in metric])
            weight = np.array([c.area for c in metric]) * self.density(centres) * rng.lognormal(0, 0.25, len(idx))
            totals = _apportion(int(self.village_pop[v]), weight)
            lon, lat = _TO_STORAGE.transform(centres[:, 0], centres[:, 1])
            share = np.clip(0.19 + 0.10 * _hilliness(lon, lat) + rng.normal(0, 0.015, len(idx)), 0.18, 0.32)
            old = np.minimum(np.round(totals * share).astype(int), totals)
            size = rng.uniform(2.4, 3.0, len(idx))
            households = np.where(totals > 0, np.maximum(np.round(totals / size), 1), 0).astype(int)
            for i, t, o, h in zip(idx, totals, old, households):
                grid_rows.append({"village_code": vrow.code, "grid_uid": grids["uid"].iat[i],
                                  "year": POPULATION_YEAR, "total": int(t), "age_60_plus": int(o),
                                  "households": int(h)})
            village_rows.append({"village_code": vrow.code, "grid_uid": None, "year": POPULATION_YEAR,
                                 "total": int(totals.sum()), "age_60_plus": int(old.sum()),
                                 "households": int(households.sum())})
        return pd.DataFrame(village_rows + grid_rows,
                            columns=["village_code", "grid_uid", "year", "total", "age_60_plus", "households"])
