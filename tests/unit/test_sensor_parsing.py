"""Sensor payload validation, topics and the hysteresis of alarm rules (no database)."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from etl.demo import ALARM_THRESHOLDS, SENSOR_TYPES
from etl.mqtt import parse_mqtt_url
from etl.sensor_sim import SimSensor, Simulator
from geodata.sensors import (
    MAX_PAYLOAD_BYTES,
    REASONS,
    ReadingRejected,
    Rule,
    parse_reading,
    reading_topic,
    topic_sensor_code,
)

NOW = datetime(2025, 5, 1, 8, 0, tzinfo=timezone.utc)


def payload(**kw):
    base = {"seq": 7, "measured_at": "2025-05-01T15:59:00+08:00", "values": {"fill_pct": 81}}
    base.update(kw)
    return json.dumps(base)


def reason(raw, **kw) -> str:
    with pytest.raises(ReadingRejected) as info:
        parse_reading(raw, now=NOW, **kw)
    exc = info.value
    assert exc.reason in REASONS and exc.message_zh and exc.message_en  # bilingual, always
    return exc.reason


def test_a_good_payload_becomes_a_reading():
    r = parse_reading(payload(), sensor_code="TB-1", now=NOW)
    assert (r.sensor_code, r.seq, r.values) == ("TB-1", 7, {"fill_pct": 81})
    assert r.measured_at == datetime(2025, 5, 1, 7, 59, tzinfo=timezone.utc)


@pytest.mark.parametrize("stamp, expected", [
    (1746086340, datetime(2025, 5, 1, 7, 59, tzinfo=timezone.utc)),        # Unix seconds
    (1746086340000, datetime(2025, 5, 1, 7, 59, tzinfo=timezone.utc)),     # milliseconds
    ("2025-05-01T07:59:00Z", datetime(2025, 5, 1, 7, 59, tzinfo=timezone.utc)),
])
def test_times_in_the_usual_forms(stamp, expected):
    assert parse_reading(payload(measured_at=stamp), sensor_code="X", now=NOW).measured_at == expected


@pytest.mark.parametrize("raw, expected", [
    (b"\xff\xfe not utf-8", "not_json"),
    ("{not json", "not_json"),
    ("[1, 2]", "not_object"),
    (payload(seq=-1), "bad_seq"),
    (payload(seq=True), "bad_seq"),
    (payload(seq="7"), "bad_seq"),
    (payload(seq=2**63), "bad_seq"),
    (payload(measured_at="2025-05-01T08:00:00"), "bad_time"),      # no zone: ambiguous by 8 hours
    (payload(measured_at="yesterday"), "bad_time"),
    (payload(measured_at=None), "bad_time"),
    (payload(measured_at="2025-05-01T08:30:00Z"), "future_time"),
    (payload(measured_at="2025-03-01T08:00:00Z"), "too_old"),
    (payload(values={}), "bad_values"),
    (payload(values=[1]), "bad_values"),
    (payload(values={"Fill": 1}), "bad_values"),
    (payload(values={"fill_pct": {"nested": 1}}), "bad_values"),
    (payload(values={"fill_pct": "x" * 41}), "bad_values"),
    (payload(values={f"k{i}": i for i in range(33)}), "bad_values"),
    (payload(sensor="OTHER"), "sensor_mismatch"),
    (payload(sensor="bad code!"), "bad_sensor_code"),
    ("{" + " " * MAX_PAYLOAD_BYTES + "}", "too_large"),
])
def test_malformed_payloads_are_refused_with_a_reason(raw, expected):
    assert reason(raw, sensor_code="TB-1") == expected


def test_nan_is_not_a_value():
    assert reason('{"seq": 1, "measured_at": "2025-05-01T07:00:00Z", "values": {"x": NaN}}',
                  sensor_code="A") == "bad_values"


def test_http_items_carry_their_sensor_code():
    assert parse_reading({"sensor": "SM-1", "seq": 1, "measured_at": "2025-05-01T07:00:00Z",
                          "values": {"smoke_obscura": 0.4, "alarm": False, "note": "ok"}}, now=NOW).sensor_code == "SM-1"
    assert reason({"seq": 1, "measured_at": "2025-05-01T07:00:00Z", "values": {"x": 1}}) == "bad_sensor_code"


def test_topics():
    topic = reading_topic("330521", "TB-330521001001-0001")
    assert topic == "dvmap/330521/TB-330521001001-0001/reading"
    assert topic_sensor_code(topic, "330521") == "TB-330521001001-0001"
    for bad in ("dvmap/330521/TB-1", "dvmap/330521/TB-1/status", "other/330521/TB-1/reading",
                "dvmap/330522/TB-1/reading", "dvmap/330521/ a b/reading"):
        with pytest.raises(ReadingRejected):
            topic_sensor_code(bad, "330521")


def rule(cmp=">=", up=80.0, down=70.0) -> Rule:
    return Rule(1, "trash_bin", "fill", "fill_pct", cmp, up, down, "0102", "normal", "sensor", "满溢", "Full")


def episodes(r: Rule, values) -> list[tuple[int, int | None]]:
    """Run values through a rule the way the ingest does; (open index, clear index) per episode."""
    out, open_at = [], None
    for i, v in enumerate(values):
        if open_at is None and r.raises(v):
            open_at = i
        elif open_at is not None and r.clears(v):
            out.append((open_at, i))
            open_at = None
    if open_at is not None:
        out.append((open_at, None))
    return out


def test_a_value_hovering_at_the_threshold_does_not_flap():
    # 79 ↔ 81 around the raise level of 80: one episode, held until the value drops below 70.
    assert episodes(rule(), [50, 81, 79, 80, 79.9, 81, 71, 70, 69.9, 75, 79, 80]) == [(1, 8), (11, None)]


def test_strict_and_falling_comparisons():
    smoke = rule(">", 10, 5)
    assert not smoke.raises(10) and smoke.raises(10.01)
    assert not smoke.clears(5.01) and smoke.clears(5)
    low = rule("<=", 20, 25)  # e.g. a battery or water level alarm
    assert low.raises(20) and not low.raises(20.5)
    assert not low.clears(24) and low.clears(25.5)
    assert low.worse(18, 12) == 12 and rule().worse(81, 90) == 90


def test_a_flag_rule_raises_on_true_and_clears_on_false():
    flag = rule(">=", 1, 1)
    assert episodes(flag, [0, 0, 1, 1, 1, 0, 0, 1]) == [(2, 5), (7, None)]


def test_mqtt_urls():
    a = parse_mqtt_url("mqtt://u%40x:p%3Aw@broker.example:2883")
    assert (a.host, a.port, a.username, a.password, a.tls) == ("broker.example", 2883, "u@x", "p:w", False)
    assert parse_mqtt_url("mqtts://h").port == 8883 and parse_mqtt_url("mqtt://h").port == 1883
    assert "p:w" not in a.masked()
    with pytest.raises(ValueError):
        parse_mqtt_url("http://h")


def test_simulated_readings_pass_validation_and_alarm_sometimes():
    sensors = [SimSensor(f"{t[:2].upper()}-{i}", t, 600.0) for i, t in
               enumerate(["manhole", "trash_bin", "environment", "camera", "smoke", "geohazard"] * 20)]
    sim = Simulator(sensors, "330521", rate=50, alarm_every=0.1, silent_share=0.0, seed=3)
    now = datetime.now(timezone.utc)
    alarmed = 0
    for s in sim.active:
        for k in range(10):
            sim._maybe_start_episode(s, 0.0)
            topic, raw = sim.message(s, now - timedelta(seconds=10 - k))
            r = parse_reading(raw, sensor_code=topic_sensor_code(topic, "330521"))
            assert r.seq == k + 1
            main = SENSOR_TYPES[s.type].main_value
            v = r.values
            alarmed += (v[main] > ALARM_THRESHOLDS[main] or v.get("cover_open") is True
                        or v.get("rain_mm", 0) >= 30 or v.get("noise_db", 0) > 70)
    # alarm_every=0.1 s at 50/s: a fifth of the readings start an episode of 3–6 readings
    assert 0.2 * 1200 < alarmed < 0.95 * 1200
