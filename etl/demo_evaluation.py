"""Demo values for the evaluation index's manual indicators (income growth, participation …).

Deterministic: each village has a steady "strength" drawn from its code, each value
is the indicator's target times that strength times some per-period noise, so a
village's rank moves a little from quarter to quarter but not at random. Written
through :func:`geodata.evaluation.set_manual_values` (validation, audit) as ``system``.
"""
from __future__ import annotations

import zlib
from datetime import datetime

import numpy as np
from sqlalchemy import text

from geodata import evaluation

DEMO_ACTOR = "demo-evaluation"


def demo_manual_values(villages: list[tuple[int, str]], indicators: list[evaluation.Indicator], period: str,
                       seed: int = 7) -> list[tuple[int, str, float]]:
    """The demo ``(village_id, indicator_code, value)`` rows of ``period`` (pure).

    Parameters
    ----------
    villages : list of (id, code)
    indicators : list of Indicator
        Only the manual ones get values.
    period : str
        ``YYYYQn``.
    seed : int

    Returns
    -------
    list of tuple
    """
    out = []
    for vid, code in villages:
        base = np.random.default_rng([seed, zlib.crc32(code.encode())])
        strength = float(base.uniform(0.45, 1.15))
        noise = np.random.default_rng([seed, zlib.crc32(f"{code}:{period}".encode())])
        for ind in indicators:
            if not ind.manual:
                continue
            value = ind.target * strength * float(noise.uniform(0.8, 1.2))
            # counts (projects, promotions) are whole numbers
            value = float(round(value)) if ind.unit_en in ("projects", "times") else round(value, 2)
            out.append((vid, ind.code, value))
    return out


def load_demo_manual_values(session, periods: list[str] | None = None, seed: int = 7,
                            now: datetime | None = None) -> dict:
    """Enter demo values of the manual indicators for ``periods`` (default: this and last quarter).

    Parameters
    ----------
    session : sqlalchemy.orm.Session
        A county-scoped session; the caller commits.
    periods : list of str, optional
    seed : int
    now : datetime, optional
        Reference time for the default periods.

    Returns
    -------
    dict
        period → number of values saved.
    """
    now = now or session.execute(text("SELECT now()")).scalar()
    periods = periods or evaluation.recent_periods(now, 2)
    villages = [(r.id, r.code.strip()) for r in session.execute(text("SELECT id, code FROM village ORDER BY code"))]
    inds = evaluation.definitions(session)
    out = {}
    for period in periods:
        rows = demo_manual_values(villages, inds, period, seed)
        out[period] = evaluation.set_manual_values(session, period, rows, actor=DEMO_ACTOR, role="system")["saved"]
    return out


__all__ = ["demo_manual_values", "load_demo_manual_values", "DEMO_ACTOR"]
