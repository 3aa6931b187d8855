"""Figure for issue 17: how many demo reports a same-subclass 50 m / 7-day rule would have merged.

    .venv/bin/python -m bench.duplicate_rule [--url OWNER_URL] [--metres 50] [--days 7] [--load]

Counts, over the whole event history of the database, the reports that had an earlier
report of the same subclass within the distance and the days before them, still open
when they came in (geodata.public.merge_rule_count). ``--load`` first loads the demo
county and ``dvmap bigscreen-demo``'s 1,500 events (seed 7) into an empty database.
Not part of ``make bench``'s table (no baseline to compare with): it prints one figure.
"""
from __future__ import annotations

import argparse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="owner URL of the database (default: the embedded cluster's dvmap)")
    parser.add_argument("--metres", type=float, default=50)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--load", action="store_true", help="load the demo county and its 1,500 events first")
    args = parser.parse_args()

    from geodata import public
    from geodata.db import SYSTEM, make_engine, make_sessionmaker, owner_url, scoped

    url = args.url or owner_url()
    engine = make_engine(url)
    try:
        if args.load:
            from etl.demo import load_demo
            from etl.demo_events import advance_demo_events, load_demo_events

            load_demo(url, seed=42)
            with scoped(make_sessionmaker(engine), SYSTEM) as s, s.begin():
                load_demo_events(s, n=1500, seed=7)
                advance_demo_events(s, seed=7)
        with scoped(make_sessionmaker(engine), SYSTEM) as s:
            for metres, days in ((args.metres, args.days), (100, 7), (50, 30)):
                out = public.merge_rule_count(s, metres=metres, days=days)
                share = "—" if out["share"] is None else f"{100 * out['share']:.1f} %"
                print(f"same subclass, ≤ {metres:g} m, ≤ {days} days, earlier one still open: "
                      f"{out['would_merge']} of {out['events']} reports would have been merged ({share})")
    finally:
        engine.dispose()


if __name__ == "__main__":
    main()
