"""Generator stages for sensors (placed by population) and a day of their hourly readings."""
from __future__ import annotations

from datetime import datetime, timedelta

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from etl.demo.geometry import _TO_STORAGE, _apportion, _sample_clustered
from etl.demo.spec import ALARM_THRESHOLDS, READING_HOURS, SENSOR_TYPES, ZONE, STATUS_SHARES
from geodata.config import STORAGE_SRID


class _Sensors:
    """Sensor stages of :class:`etl.demo.generator._Generator`."""

    def make_sensors(self, villages, grids, population) -> tuple[gpd.GeoDataFrame, pd.DataFrame]:
        """Sensors per grid in proportion to its people (geohazard ones only in the hills), and their readings."""
        rng = self.rng_sensors
        grid_pop = population[population["grid_uid"].notna()].set_index("grid_uid")["total"]
        pop = grid_pop.reindex(grids["uid"]).to_numpy(dtype=float)
        terrain = dict(zip(villages["code"], villages["terrain"]))
        hill = np.array([terrain[c] == "hill" for c in grids["village_code"]])
        total_pop = int(population.loc[population["grid_uid"].isna(), "total"].sum())

        per_grid: dict[str, np.ndarray] = {}
        for code, per_100k in self.densities.items():
            n = int(round(total_pop * per_100k / 100_000))
            weight = pop * hill if code == "geohazard" else pop
            per_grid[code] = _apportion(n, weight)

        recs = []
        grid_village = grids["village_code"].tolist()
        grid_code = grids["code"].tolist()
        for g in range(len(grids)):
            counts = {code: int(per_grid[code][g]) for code in self.densities}
            n = sum(counts.values())
            if n == 0:
                continue
            pts = _sample_clustered(self.grids_m[g], n, rng)
            lon, lat = _TO_STORAGE.transform(pts[:, 0], pts[:, 1])
            k = 0
            for code, c in counts.items():
                for _ in range(c):
                    recs.append((code, grid_village[g], grid_code[g],
                                 round(float(lon[k]), 6), round(float(lat[k]), 6)))
                    k += 1
        frame = pd.DataFrame(recs, columns=["type", "village_code", "grid_code", "lon", "lat"])
        order = {code: i for i, code in enumerate(SENSOR_TYPES)}
        frame["_t"] = frame["type"].map(order)
        frame = frame.sort_values(["village_code", "_t", "grid_code"], kind="stable").reset_index(drop=True)
        n_in_village = frame.groupby(["village_code", "type"], sort=False).cumcount() + 1
        frame["code"] = [f"{SENSOR_TYPES[t].prefix}-{v}-{n:04d}"
                         for t, v, n in zip(frame["type"], frame["village_code"], n_in_village)]
        m = len(frame)
        status_codes = np.array(list(STATUS_SHARES))
        frame["status"] = status_codes[rng.choice(len(status_codes), size=m, p=list(STATUS_SHARES.values()))]
        start = datetime(2023, 3, 1, 9, 0, tzinfo=ZONE)
        minutes = rng.integers(0, 640 * 24 * 60, m)
        frame["installed_at"] = [start + timedelta(minutes=int(x)) for x in minutes]
        readings, last = self.make_readings(frame)
        frame["last_seen_at"] = last["last_seen_at"]
        frame["last_seq"] = last["last_seq"]
        frame["last_values"] = last["last_values"]
        geometry = shapely.points(frame["lon"].to_numpy(), frame["lat"].to_numpy())
        sensors = gpd.GeoDataFrame(
            frame[["code", "type", "village_code", "grid_code", "status", "installed_at",
                   "last_seen_at", "last_seq", "last_values"]],
            geometry=geometry, crs=STORAGE_SRID,
        )
        return sensors, readings

    def make_readings(self, sensors: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
        """24 hourly readings per sensor ending at ``now`` (offline ones stop early)."""
        rng = self.rng_readings
        m = len(sensors)
        H = READING_HOURS
        status = sensors["status"].to_numpy()
        offline_hours = np.where(status == "offline", rng.integers(3, 13, m), 0)
        n_read = H - offline_hours
        offset_s = rng.integers(0, 300, m)  # sensors do not all report on the hour
        # measured_at[i, k] for seq k+1: now - (H-1-k) hours - offset
        hours_back = (H - 1 - np.arange(H))[None, :]
        now_s = self.now.timestamp()
        t = now_s - hours_back * 3600.0 - offset_s[:, None]
        # Wall-clock hour in the county: the zone's offset at ``now`` (China keeps no summer time).
        local_hour = ((t + self.now.utcoffset().total_seconds()) % 86400) / 3600.0
        alarm_onset = np.where(status == "alarm", H - rng.integers(1, 5, m), H)  # index of first alarm reading
        main, extra_cols, values_cols = self._series(sensors["type"].to_numpy(), status, local_hour, alarm_onset)
        values = _value_dicts(m, main, extra_cols, values_cols, n_read, alarm_onset)
        return self._reading_frame(sensors, t, n_read, values)

    def _series(self, types: np.ndarray, status: np.ndarray, local_hour: np.ndarray, alarm_onset: np.ndarray):
        """Main value of every sensor and hour, and each type's extra values.

        Types are drawn in :data:`SENSOR_TYPES` order from one stream: the order
        of the draws is part of the output.
        """
        rng = self.rng_readings
        m, H = local_hour.shape
        values_cols: dict[str, np.ndarray] = {}
        extra_cols: dict[str, dict[str, np.ndarray]] = {}
        main = np.zeros((m, H))
        for code, spec in SENSOR_TYPES.items():
            rows = np.flatnonzero(types == code)
            if len(rows) == 0:
                continue
            n = len(rows)
            level = rng.uniform(*spec.level, n)[:, None]
            amp = spec.amp * (level if spec.relative_amp else 1.0)
            cycle = np.cos(2 * np.pi * (local_hour[rows] - spec.peak_hour) / 24.0)
            series = level + amp * cycle + rng.normal(0, spec.noise, (n, H))
            threshold = ALARM_THRESHOLDS[spec.main_value]
            series = np.clip(series, 0.0, 0.92 * threshold)
            if code == "geohazard":  # cumulative displacement creeps upward
                series = np.clip(series + np.linspace(0, 0.3, H)[None, :], 0.0, 0.92 * threshold)
            alarm_val = rng.uniform(*spec.alarm, n)[:, None] + rng.normal(0, spec.noise, (n, H))
            alarm_val = np.maximum(alarm_val, spec.alarm[0])
            in_alarm = np.arange(H)[None, :] >= alarm_onset[rows][:, None]
            series = np.where(in_alarm, alarm_val, series)
            main[rows] = np.round(series, spec.decimals)
            extra_cols[code] = _extras(rng, code, spec, status[rows], local_hour[rows], main[rows])
            values_cols[code] = rows
        return main, extra_cols, values_cols

    def _reading_frame(self, sensors: pd.DataFrame, t: np.ndarray, n_read: np.ndarray,
                       values: list) -> tuple[pd.DataFrame, dict]:
        """The readings frame (sensor-major) and each sensor's last reading."""
        rng = self.rng_readings
        m, H = t.shape
        t_s = np.round(t).astype("int64")
        delay = rng.integers(1, 8, (m, H))
        rows_i, cols_k = np.nonzero(np.arange(H)[None, :] < n_read[:, None])  # sensor-major order
        readings = pd.DataFrame({
            "sensor_code": sensors["code"].to_numpy()[rows_i],
            "seq": cols_k + 1,
            "village_code": sensors["village_code"].to_numpy()[rows_i],
            "measured_at": _stamps(t_s[rows_i, cols_k]),
            "received_at": _stamps(t_s[rows_i, cols_k] + delay[rows_i, cols_k]),
            "values": [d for per in values for d in per],
        })
        last_k = n_read - 1
        last = {
            "last_seen_at": _stamps(t_s[np.arange(m), last_k]).to_numpy(),
            "last_seq": n_read.astype(int),
            "last_values": [per[-1] for per in values],
        }
        return readings, last


def _extras(rng: np.random.Generator, code: str, spec, status: np.ndarray, local_hour: np.ndarray,
            main: np.ndarray) -> dict[str, np.ndarray]:
    """A type's secondary values (battery, signal, temperature…), ``(n, hours)`` arrays."""
    n, H = local_hour.shape
    extras: dict[str, np.ndarray] = {}
    if spec.battery:
        low = (status == "offline") & (rng.random(n) < 0.5)
        start_b = np.where(low, rng.uniform(3, 15, n), rng.uniform(35, 100, n))
        extras["battery_pct"] = np.round(start_b[:, None] - 0.02 * np.arange(H)[None, :]).clip(0, 100)
    if code != "camera":
        base = rng.uniform(-112, -70, n)[:, None]
        extras["rssi_dbm"] = np.round(base + rng.normal(0, 2, (n, H)))
    temp = 24 + 5 * np.cos(2 * np.pi * (local_hour - 14) / 24.0) + rng.normal(0, 0.4, (n, H))
    if code == "environment":
        extras["pm10"] = np.round(main * rng.uniform(1.3, 1.7, n)[:, None])
        extras["temp_c"] = np.round(temp, 1)
        extras["humidity_pct"] = np.round(np.clip(72 - 2.5 * (temp - 24) + rng.normal(0, 2, (n, H)), 20, 100))
        extras["noise_db"] = np.round(
            47 + 8 * np.cos(2 * np.pi * (local_hour - 13) / 24.0) + rng.normal(0, 1.5, (n, H)), 1)
    elif code in ("trash_bin", "smoke"):
        extras["temp_c"] = np.round(temp if code == "trash_bin" else 22 + 0.4 * (temp - 24), 1)
    elif code == "camera":
        extras["vehicles"] = np.round(main * rng.uniform(0.3, 0.8, n)[:, None])
    elif code == "geohazard":
        rain = np.where(rng.random((n, H)) < 0.1, rng.gamma(1.5, 2.0, (n, H)), 0.0)
        extras["rain_mm"] = np.round(rain, 1)
        extras["tilt_deg"] = np.round(rng.uniform(0.1, 0.8, n)[:, None] + rng.normal(0, 0.02, (n, H)), 2)
    return extras


def _value_dicts(m: int, main: np.ndarray, extra_cols: dict, values_cols: dict, n_read: np.ndarray,
                 alarm_onset: np.ndarray) -> list:
    """Each sensor's readings as value dicts, built from plain lists (much faster than numpy scalars)."""
    values: list[list[dict] | None] = [None] * m
    for code, rows in values_cols.items():
        spec = SENSOR_TYPES[code]
        key = spec.main_value
        cast = int if spec.decimals == 0 else float
        main_l = main[rows].tolist()
        extras = {k: (a.astype(int).tolist() if k in ("battery_pct", "rssi_dbm", "humidity_pct", "pm10",
                                                        "vehicles") else a.tolist())
                  for k, a in extra_cols[code].items()}
        onset = alarm_onset[rows]
        for j, i in enumerate(rows):
            per = []
            for k in range(int(n_read[i])):
                d = {key: cast(main_l[j][k])}
                for name, arr in extras.items():
                    d[name] = arr[j][k]
                if code == "camera" and k >= onset[j]:
                    d["event"] = "crowd"
                per.append(d)
            values[i] = per
    return values


def _stamps(seconds: np.ndarray) -> pd.Series:
    return pd.Series(pd.to_datetime(seconds, unit="s", utc=True).tz_convert(ZONE))
