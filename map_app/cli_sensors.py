"""``dvmap sensors …``: the ingest worker, the simulator, a private broker, counters, gateway keys."""
from __future__ import annotations

import logging
import signal
import threading

import click


def _base():
    # Imported lazily: map_app.cli imports this module while it is being built.
    from map_app import cli

    return cli


def _database():
    from geodata.db import Database

    base = _base()
    url = base._resolve("app")
    base._check_db(url)
    return Database(url)


def _address(mqtt_url: str | None):
    from etl.mqtt import parse_mqtt_url

    try:
        return parse_mqtt_url(mqtt_url)
    except ValueError as exc:
        _base()._fail(str(exc))


def _stop_on_signals(stop) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop())


def _logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")


@click.group("sensors")
def sensors_group() -> None:
    """物联感知:MQTT 接入、模拟、计数 / IoT sensors: ingest, simulator, counters."""


@sensors_group.command("ingest")
@click.option("--mqtt-url", default=None, help="Broker URL (default MQTT_URL or mqtt://127.0.0.1:1883).")
@click.option("--county", default=None, help="County code of the topics (default: the database's county).")
@click.option("--client-id", default=None, help="MQTT client id (default dvmap-ingest-<county>); one worker per id.")
@click.option("--batch", "batch_size", default=1000, show_default=True, help="Most messages per transaction.")
@click.option("--offline-every", default=30.0, show_default=True, help="Seconds between offline checks.")
@click.option("-v", "--verbose", is_flag=True)
def ingest_cmd(mqtt_url, county, client_id, batch_size, offline_every, verbose):
    """订阅 dvmap/<县>/+/reading 并入库 / Subscribe to readings and store them (runs until stopped)."""
    from etl.sensor_ingest import IngestWorker

    _logging(verbose)
    worker = IngestWorker(_database(), _address(mqtt_url), county=county, client_id=client_id,
                          batch_size=batch_size, offline_every=offline_every)
    _stop_on_signals(worker.stop)
    worker.run()


@sensors_group.command("simulate")
@click.option("--rate", default=None, type=float, help="Messages per second in total (default: real-time cadence).")
@click.option("--duration", default=None, type=float, help="Seconds to run (default: until stopped).")
@click.option("--alarm-every", default=30.0, show_default=True, help="Mean seconds between new alarms, county-wide.")
@click.option("--silent-share", default=0.01, show_default=True, help="Share of sensors that never report.")
@click.option("--outage-every", default=120.0, show_default=True,
              help="Mean seconds between temporary outages (0 = none).")
@click.option("--seed", default=None, type=int, help="Random seed.")
@click.option("--mqtt-url", default=None, help="Broker URL (default MQTT_URL or mqtt://127.0.0.1:1883).")
@click.option("-v", "--verbose", is_flag=True)
def simulate_cmd(rate, duration, alarm_every, silent_share, outage_every, seed, mqtt_url, verbose):
    """向代理发布演示县的模拟读数 / Publish simulated readings for the demo county."""
    from etl.mqtt import make_client
    from etl.sensor_sim import Simulator, load_sensors
    from geodata import sensors
    from geodata.db import SYSTEM

    _logging(verbose)
    if rate is not None and rate <= 0:
        _base()._fail("--rate 须大于 0 / --rate must be positive")
    address = _address(mqtt_url)
    database = _database()
    with database.session(SYSTEM) as session:
        county = sensors.county_code(session)
        devices = load_sensors(session)
    if not county or not devices:
        _base()._fail("数据库中没有县或设备,请先 dvmap demo-data / no county or sensors: run dvmap demo-data first")
    sim = Simulator(devices, county, rate=rate, alarm_every=alarm_every, silent_share=silent_share,
                    outage_every=outage_every, seed=seed)
    client = make_client(address, f"dvmap-sim-{county}", clean_session=True)
    client.connect_async(address.host, address.port, keepalive=30)
    client.loop_start()
    stop = threading.Event()
    _stop_on_signals(stop.set)
    click.echo(f"simulating {len(sim.active)} of {len(sim.sensors)} sensors at {sim.rate:.1f} readings/s "
               f"→ {address.masked()}")
    try:
        sent = sim.run(client, duration, stop)
    finally:
        # Give queued QoS 1 messages a moment to reach the broker.
        deadline = 10.0
        while client.want_write() and deadline > 0 and not stop.is_set():
            stop.wait(0.1)
            deadline -= 0.1
        client.disconnect()
        client.loop_stop()
    click.echo(f"published {sent} readings, {sim.alarms} alarm episodes started")


@sensors_group.group("broker")
def broker_group() -> None:
    """项目自带的 Mosquitto / The project's private Mosquitto (for demos)."""


def _local_broker():
    from etl.mqtt import LocalBroker, parse_mqtt_url
    from geodata.config import get_settings

    address = parse_mqtt_url()
    return LocalBroker(get_settings().data_dir / "mosquitto", address.port, address.host), address


@broker_group.command("start")
def broker_start():
    """Start a private broker at MQTT_URL unless one already answers there."""
    from etl.mqtt import probe_broker
    from geodata.config import DataDirError, ensure_writable_dir

    broker, address = _local_broker()
    found = probe_broker(address)
    if found == "mqtt":
        click.echo(f"broker already running at {address.masked()}")
        return
    if found == "other":
        _base()._fail(f"端口 {address.port} 被其他程序占用(不是 MQTT 代理)/ port {address.port} on {address.host} "
                      "is held by a program that is not an MQTT broker: stop it or set MQTT_URL to another port")
    if address.host not in ("127.0.0.1", "localhost"):
        _base()._fail(f"no broker answers at {address.masked()}, and it is not local: start it there")
    try:
        ensure_writable_dir(broker.folder)
        broker.start()
    except DataDirError as exc:
        _base()._fail(str(exc))
    except RuntimeError as exc:
        _base()._fail(str(exc))
    except OSError as exc:  # the folder turned read-only between the check and the start
        _base()._fail(f"代理无法启动 / broker cannot start: {exc.strerror or exc} ({broker.folder})")
    click.echo(f"broker started at {address.masked()} (data in {broker.folder})")


@broker_group.command("stop")
def broker_stop():
    """Stop the private broker (only the one this project started)."""
    broker, address = _local_broker()
    if broker.pid() is None:
        click.echo("no private broker running")
        return
    broker.stop()
    click.echo("stopped")


@sensors_group.command("check-offline")
def check_offline_cmd():
    """Mark sensors silent for too long offline (the worker does this every 30 s)."""
    from geodata import sensors
    from geodata.db import SYSTEM

    database = _database()
    with database.session(SYSTEM) as session, session.begin():
        result = sensors.check_offline(session, source="cli")
    click.echo(f"{result['opened']} sensor(s) newly offline")


@sensors_group.command("stats")
@click.option("--days", default=1, show_default=True, help="How many days back (China time).")
def stats_cmd(days):
    """接入计数与设备状态 / Ingest counters and sensor status."""
    from geodata import sensors
    from geodata.db import SYSTEM

    database = _database()
    with database.session(SYSTEM) as session:
        counts = sensors.status_counts(session)
        rows = sensors.ingest_stats(session, days)
    click.echo(f"sensors: {counts['total']} · online {counts['online']} · alarm {counts['alarm']} · "
               f"offline {counts['offline']}")
    for r in rows:
        what = r["outcome"] + (f" ({r['reason']})" if r["reason"] else "")
        click.echo(f"{r['day']}  {r['source']:<5} {what:<32} {r['count']:>10,}")


@sensors_group.command("gateway-key")
@click.argument("name")
@click.option("--village", "village_codes", multiple=True, help="12-digit village code (repeatable); default: county.")
def gateway_key_cmd(name, village_codes):
    """Issue an API key for an HTTP sensor gateway (shown once)."""
    from sqlalchemy import text
    from sqlalchemy.exc import IntegrityError

    from geodata import sensors
    from geodata.db import SYSTEM, make_engine, make_sessionmaker, scoped
    from geodata.i18n import BilingualError

    base = _base()
    url = base._resolve("owner")
    base._check_db(url)
    with scoped(make_sessionmaker(make_engine(url)), SYSTEM) as session, session.begin():
        ids = None
        if village_codes:
            found = dict(session.execute(text("SELECT code, id FROM village WHERE code = ANY(:c)"),
                                         {"c": list(village_codes)}).all())
            missing = sorted(set(village_codes) - set(found))
            if missing:
                base._fail(f"村代码不存在 / unknown village code: {', '.join(missing)}")
            ids = list(found.values())
        try:
            with session.begin_nested():
                client_id, key = sensors.create_gateway_key(session, name, ids)
        except BilingualError as exc:
            base._fail(f"{exc.message_zh} / {exc.message_en}")
        except IntegrityError:
            base._fail(f"名称已被使用 / the name is taken: {name}")
    click.echo(f"gateway {name} (id {client_id}): {key}")
    click.echo("POST readings to /api/sensors/readings with header 'X-API-Key: <key>'")


COMMANDS = [sensors_group]
