"""The events UI's server work: the table query, the KPI block, the event panel.

Runs against the dev database (``make demo``'s; ``dvmap demo-data --events N`` for a
realistic load). Each figure is printed beside a baseline measured in the same run:

* table: the capped query (newest 2,000, what the drawer receives) vs the same filter
  uncapped (what sending every row would cost);
* KPI block: :func:`geodata.events.indicators` (one aggregate in PostGIS) vs fetching
  the period's events and computing the same rates in Python;
* panel: rendering the whole event panel (event, history, photos, workers, lists) vs
  reading the event row alone.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import text

from bench.common import median, p95, timed
from geodata.clock import display_zone
from geodata.workflow import State


def _python_indicators(session, start, end):
    """The baseline: the period's candidate events to Python, rates computed there."""
    rows = session.execute(
        text(
            "SELECT dispatched_at, closed_at, due_at, sla_due_at, postpone_count, rework_count FROM event"
            " WHERE sla_due_at IS NOT NULL AND state <> :rejected"
            "   AND ((sla_due_at >= :s AND sla_due_at < :e) OR (closed_at >= :s AND closed_at < :e))"
        ),
        {"s": start, "e": end, "rejected": State.REJECTED.value},
    ).all()
    n = c = t = p = w = 0
    hours = []
    for d, closed, due, sla, postponed, rework in rows:
        settle = min(x for x in (closed, sla) if x is not None)
        if not (start <= settle < end):
            continue
        n += 1
        if closed is not None and closed < end:
            c += 1
            hours.append((closed - d).total_seconds() / 3600)
            t += closed <= due
        p += postponed > 0 and due >= end and (closed is None or closed >= end)
        w += rework > 0
    return {"closure": c / (n - p) if n > p else None, "rework": w / n if n else None,
            "avg_h": sum(hours) / len(hours) if hours else None}


def run() -> list[dict]:
    from geodata import events as ev
    from geodata.db import SYSTEM, Database, app_url
    from geodata.queries import event_list as el
    from layers import event_panel

    db = Database(app_url())
    rows = []
    with db.session(SYSTEM) as s:
        total = s.execute(text("SELECT count(*) FROM event")).scalar()
        if not total:
            db.engine.dispose()
            return [dict(name="events UI", value=None, baseline=None, unit="",
                         note="no events in the dev database: dvmap demo-data --events 100000")]
        end = datetime.now(display_zone())
        year, month = end - timedelta(days=365), end - timedelta(days=30)

        capped = timed(lambda: el.event_rows(s, state_group="all", start=year, end=end), repeat=7)
        full = timed(lambda: el.event_rows(s, state_group="all", start=year, end=end, limit=100_000), repeat=3)
        shown, matching = el.event_rows(s, state_group="all", start=year, end=end)
        rows.append(dict(name="events table, county, 365 d (p50)", value=median(capped), baseline=median(full),
                         unit="ms", note=f"newest {len(shown):,} of {matching:,} rows vs all of them; "
                                         f"p95 {p95(capped):.0f} ms; {total:,} events in the database"))

        k_sql = timed(lambda: ev.indicators(s, month, end), repeat=9)
        k_py = timed(lambda: _python_indicators(s, month, end), repeat=5)
        k = ev.indicators(s, month, end)
        py = _python_indicators(s, month, end)
        same = (k.closure_rate is None and py["closure"] is None) or abs((k.closure_rate or 0) - py["closure"]) < 1e-9
        rows.append(dict(name="KPI block, county, 30 d (p50)", value=median(k_sql), baseline=median(k_py), unit="ms",
                         note=f"indicators() in PostGIS vs rows to Python; {k.should_close:,} cases due; "
                              f"same 结案率: {same}"))

        eid = s.execute(text(
            "SELECT event_id FROM event_history GROUP BY event_id ORDER BY count(*) DESC, event_id LIMIT 1")).scalar()
        panel = timed(lambda: event_panel.render(s, eid, "zh"), repeat=9)
        one = timed(lambda: ev.get_event(s, eid), repeat=9)
        n_hist = len(ev.event_history(s, eid))
        rows.append(dict(name="event panel render (p50)", value=median(panel), baseline=median(one), unit="ms",
                         note=f"whole panel ({n_hist} history rows) vs the event row alone"))
    db.engine.dispose()
    return rows
