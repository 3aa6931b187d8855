"""Track retention: positions are personal data, kept ``DVMAP_TRACK_RETENTION_DAYS`` (180) days.

After that a patrol keeps its figures (start, end, length — what the weekly
statistics need) but loses its points and its line. Row-level security (0018)
lets only system jobs delete points, so this runs with the system scope
(``dvmap field purge-tracks``).
"""
from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

from geodata.config import get_settings


def purge_tracks(session: Session, days: int | None = None) -> dict:
    """Delete track points older than ``days`` and the lines of patrols that ended before then.

    Parameters
    ----------
    session : Session
        With the system scope (other scopes delete nothing: RLS).
    days : int, optional
        Default ``DVMAP_TRACK_RETENTION_DAYS``.

    Returns
    -------
    dict
        ``{points, tracks, days}``: rows deleted, lines cleared.
    """
    days = int(get_settings().track_retention_days if days is None else days)
    if days < 1:
        raise ValueError("retention must be at least one day")
    cutoff = text("now() - make_interval(days => :d)")
    points = session.execute(text(f"DELETE FROM patrol_point WHERE t < {cutoff.text}"), {"d": days}).rowcount
    tracks = session.execute(
        text(f"""UPDATE patrol SET geom = NULL
                  WHERE geom IS NOT NULL AND coalesce(ended_at, last_point_at, started_at) < {cutoff.text}"""),
        {"d": days},
    ).rowcount
    return {"points": int(points), "tracks": int(tracks), "days": days}
