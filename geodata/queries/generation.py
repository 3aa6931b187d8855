"""Read the change generations bumped by the triggers of migration 0009."""
from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

NAMES = ("admin", "grid", "resource", "sensor", "event", "custom", "patrol")  # patrol: 0018


def generations(session: Session) -> dict[str, int]:
    """Current generation of every data family, in one round trip.

    Returns
    -------
    dict
        name → counter; a value changes whenever a table of that family changed.
    """
    sql = " UNION ALL ".join(
        f"SELECT '{n}' AS name, last_value + (CASE WHEN is_called THEN 1 ELSE 0 END) AS v FROM dvmap_gen_{n}"
        for n in NAMES
    )
    return {r[0]: int(r[1]) for r in session.execute(text(sql))}
