"""Following a report by its tracking code: the public timeline, the reporter's 评价, points, 满意率.

The timeline is written for the villager: each step in plain words with its time
in the display zone (Asia/Shanghai), never an official's name, a phone or the
reporter's name. The only free text shown is the reason of a rejection (the
reporter must learn why) and the handling result's photo.

"Not satisfied" within ``DVMAP_PUBLIC_RERATE_DAYS`` of closing *flags* the case for
核查 (``public_report.review_flagged_at`` plus a history note) instead of reopening
it: 评价 is terminal in the workflow and the closing already counted in 结案率 and
the deadline record; reopening would rewrite both, while a flag keeps the record
honest and puts the case before an official, who can open a follow-up event.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session

from geodata import events as ev
from geodata.clock import fmt_local, local_today
from geodata.public.common import (PUBLIC_EVENT_SQL, PublicError, PublicNotFound, PublicSettings, code_hash,
                                   plain_text)
from geodata.public.intake import STATE_LABELS_PUBLIC
from geodata.workflow import Action, State

#: 评价 levels → the event's 1–5 rating (evaluation.py counts ≥ 4 as satisfied: 满意 + 基本满意).
RATING_VALUES = {"satisfied": 5, "basic": 4, "not": 1}
RATING_LABELS = {"satisfied": ("满意", "Satisfied"), "basic": ("基本满意", "Basically satisfied"),
                 "not": ("不满意", "Not satisfied")}
RATER = ev.Actor("报告人(追踪码)", "citizen")

#: Public wording of each step (action → zh, en); steps not listed are not shown.
STEP_WORDS: dict[str, tuple[str, str]] = {
    "report": ("已收到您的反映", "We received your report"),
    "confirm": ("网格员已现场核实,正式受理", "A grid worker checked it on site; it is accepted"),
    "reject": ("经核实不予受理", "After checking, it was not accepted"),
    "accept": ("已立案", "Registered as a case"),
    "dispatch": ("已派人处理", "Someone was assigned to handle it"),
    "reassign": ("已改派他人处理", "Reassigned"),
    "send_back": ("重新安排处理人", "Being reassigned"),
    "start": ("开始处理", "Handling started"),
    "postpone": ("延期处理", "Handling postponed"),
    "resume": ("恢复处理", "Handling resumed"),
    "handle": ("已处理完毕", "Handled"),
    "verify_pass": ("处理结果已核查", "The result was checked"),
    "verify_fail": ("核查未通过,重新处理", "Check failed; being handled again"),
    "close": ("已办结", "Done"),
    "rate": ("您已评价", "You rated the result"),
    "escalate": ("已督办", "Escalated"),
    "merge": ("与附近同一问题合并处理", "Merged with the same problem nearby"),
    "unmerge": ("取消合并,单独处理", "Unmerged; handled on its own"),
}


def _report_row(session: Session, code: str):
    row = session.execute(
        text(f"""SELECT r.id, r.event_id, r.rating_level, r.rating_comment, r.rated_at, e.state, e.version,
                        e.closed_at, e.subclass_code, s.name_zh, s.name_en, e.reported_at
                   FROM public_report r JOIN event e ON e.id = r.event_id AND e.reported_at = r.reported_at
                   JOIN event_subclass s ON s.code = e.subclass_code
                  WHERE r.tracking_code_hash = :h AND {PUBLIC_EVENT_SQL}"""),
        {"h": code_hash(code)},
    ).mappings().first()
    if row is None:
        raise PublicNotFound()
    return row


def _timeline(session: Session, event_id: int) -> list[dict]:
    steps = []
    for h in session.execute(
        text("SELECT id, at, action, note FROM event_history WHERE event_id = :e ORDER BY version"), {"e": event_id}
    ).mappings():
        words = STEP_WORDS.get(h["action"])
        if words is None:
            continue
        step = {"action": h["action"], "text_zh": words[0], "text_en": words[1], "at": fmt_local(h["at"]),
                "photos": []}
        if h["action"] == "reject" and h["note"]:
            step["reason"] = h["note"]  # the reporter must learn why
        if h["action"] == "handle":
            step["photos"] = list(session.execute(
                text("SELECT id FROM event_photo WHERE history_id = :h ORDER BY id"), {"h": h["id"]}).scalars())
        steps.append(step)
    return steps


def track(session: Session, code: str) -> dict:
    """The public view of a report: status, timeline, after-photos, whether it can be rated.

    Raises
    ------
    PublicNotFound
        Unknown or malformed code, or an event in a sensitive subclass.
    """
    row = _report_row(session, code)
    zh, en = STATE_LABELS_PUBLIC[row["state"]]
    out = {
        "category_zh": row["name_zh"], "category_en": row["name_en"], "state": row["state"],
        "status_zh": zh, "status_en": en, "reported_at": fmt_local(row["reported_at"]),
        "timeline": _timeline(session, row["event_id"]),
        "can_rate": row["state"] == State.CLOSED.value and row["rating_level"] is None,
        "rating": None,
    }
    if row["rating_level"]:
        lz, le = RATING_LABELS[row["rating_level"]]
        out["rating"] = {"level": row["rating_level"], "label_zh": lz, "label_en": le,
                         "comment": row["rating_comment"], "at": fmt_local(row["rated_at"])}
    kept = session.execute(
        text("SELECT kept_event_id FROM event_merge WHERE merged_event_id = :e AND undone_at IS NULL"),
        {"e": row["event_id"]},
    ).scalar()
    if kept is not None:  # the kept event's progress is this report's progress now
        kept_state = session.execute(
            text(f"SELECT e.state FROM event e WHERE e.id = :k AND {PUBLIC_EVENT_SQL}"), {"k": kept}).scalar()
        if kept_state is not None:
            kz, ke = STATE_LABELS_PUBLIC[kept_state]
            out["merged_into"] = {"status_zh": kz, "status_en": ke, "timeline": _timeline(session, kept)}
    out["after_photos"] = [p for s in out["timeline"] + out.get("merged_into", {}).get("timeline", [])
                           for p in s["photos"]]
    return out


def rate(session: Session, code: str, level: str, comment=None, *, settings: PublicSettings | None = None,
         now: datetime | None = None) -> dict:
    """The reporter's 评价 through the workflow's RATE (role ``citizen``), plus comment and 核查 flag.

    Parameters
    ----------
    code : str
        The tracking code.
    level : str
        ``satisfied``, ``basic`` or ``not`` (5, 4, 1 on the event's 1–5 scale).
    comment : str, optional
        Plain text, at most 500 characters.

    Returns
    -------
    dict
        ``{"rating", "flagged"}``.
    """
    settings = settings or PublicSettings.from_env()
    if level not in RATING_VALUES:
        raise PublicError("请选择满意、基本满意或不满意。", "Choose satisfied, basically satisfied or not satisfied.",
                          code="rating")
    comment = plain_text(comment, limit=500, required=False, zh="评价意见", en="comment")
    row = _report_row(session, code)
    if row["rating_level"] is not None:
        raise PublicError("您已经评价过了。", "You have already rated this.", code="already_rated", http_status=409)
    if row["state"] != State.CLOSED.value:
        raise PublicError("办结后才能评价。", "You can rate once the case is done.", code="not_closed",
                          http_status=409)
    ev.transition(session, row["event_id"], Action.RATE, RATER, row["version"], note=comment,
                  rating=RATING_VALUES[level])
    now = now or session.execute(text("SELECT now()")).scalar_one()
    flagged = level == "not" and row["closed_at"] is not None \
        and now - row["closed_at"] <= timedelta(days=settings.rerate_days)
    session.execute(
        text("""UPDATE public_report SET rating_level = :l, rating_comment = :c, rated_at = :now,
                       review_flagged_at = CASE WHEN :f THEN :now END WHERE id = :id"""),
        {"l": level, "c": comment, "now": now, "f": flagged, "id": row["id"]},
    )
    if flagged:
        ev.add_note(session, row["event_id"], RATER, "报告人不满意,需核查 / Reporter not satisfied: review (核查)",
                    data={"review": True, "rating_level": level})
    return {"rating": RATING_VALUES[level], "flagged": flagged}


# -- points (积分) ------------------------------------------------------------------------------

def award_points(session: Session, *, settings: PublicSettings | None = None) -> int:
    """Award points for reports accepted as cases (confirmed 核实属实), within the monthly cap.

    Idempotent: reports with a phone whose event has a ``confirm`` history row and
    that were not counted yet get ``points_per_report``, in confirmation order, up to
    ``points_monthly_cap`` per phone and month (China time) across villages. A report
    over the cap is counted with 0 points (marked ``points_awarded = -1``).

    Returns
    -------
    int
        Points awarded by this call.
    """
    settings = settings or PublicSettings.from_env()
    rows = session.execute(
        text("""SELECT r.id, r.phone_hash, r.village_id, h.at
                  FROM public_report r
                  JOIN event_history h ON h.event_id = r.event_id AND h.action = 'confirm'
                 WHERE r.phone_hash IS NOT NULL AND r.points_awarded = 0 AND r.village_id IS NOT NULL
                 ORDER BY h.at, r.id""")
    ).mappings().all()
    total = 0
    for r in rows:
        month = _month(r["at"])
        used = session.execute(
            text("SELECT coalesce(sum(points), 0) FROM citizen_points WHERE phone_hash = :p AND month = :m"),
            {"p": r["phone_hash"], "m": month},
        ).scalar_one()
        pts = max(0, min(settings.points_per_report, settings.points_monthly_cap - int(used)))
        session.execute(
            text("""INSERT INTO citizen_points AS c (phone_hash, month, village_id, points, reports)
                    VALUES (:p, :m, :v, :n, 1)
                    ON CONFLICT (phone_hash, month, village_id)
                    DO UPDATE SET points = c.points + EXCLUDED.points, reports = c.reports + 1"""),
            {"p": r["phone_hash"], "m": month, "v": r["village_id"], "n": pts},
        )
        # smallint -1 marks "counted, over the cap" so the row is not counted again
        session.execute(text("UPDATE public_report SET points_awarded = :n WHERE id = :id"),
                        {"n": pts if pts > 0 else -1, "id": r["id"]})
        total += pts
    return total


def _month(at: datetime) -> date:
    day = local_today(at)
    return day.replace(day=1)


def points_by_village(session: Session, month: date | None = None) -> list[dict]:
    """积分 per village for a month (default: this month, China time): reporters, reports, points."""
    award_points(session)
    month = (month or local_today()).replace(day=1)
    return [dict(r) for r in session.execute(
        text("""SELECT c.village_id, v.name AS village, count(DISTINCT c.phone_hash) AS reporters,
                       sum(c.reports) AS reports, sum(c.points) AS points
                  FROM citizen_points c JOIN village v ON v.id = c.village_id
                 WHERE c.month = :m GROUP BY c.village_id, v.name ORDER BY points DESC, v.name"""),
        {"m": month},
    ).mappings()]


# -- 满意率 ---------------------------------------------------------------------------------------

def satisfaction(session: Session, start: datetime, end: datetime, village_ids=None) -> dict:
    """满意率 of the period: share of ratings given in ``[start, end)`` that are ≥ 4 (满意 + 基本满意).

    The same rule as the evaluation index's ``satisfaction`` (geodata/evaluation.py), so
    the KPI strip and the index agree; reporters' ratings (via tracking code) and
    officials' count alike, and ``by_reporter`` says how many came from reporters.

    Returns
    -------
    dict
        ``{"rated", "satisfied", "rate", "by_reporter"}`` (``rate`` None without ratings).
    """
    row = session.execute(
        text("""SELECT count(*) AS rated, count(*) FILTER (WHERE e.rating >= 4) AS satisfied,
                       count(*) FILTER (WHERE EXISTS (SELECT 1 FROM public_report r
                                                        WHERE r.event_id = e.id AND r.rating_level IS NOT NULL))
                           AS by_reporter
                  FROM event e
                 WHERE e.rating IS NOT NULL AND e.evaluated_at >= :s AND e.evaluated_at < :e
                   AND (CAST(:v AS integer[]) IS NULL OR e.village_id = ANY(CAST(:v AS integer[])))"""),
        {"s": start, "e": end, "v": list(village_ids) if village_ids else None},
    ).mappings().one()
    rated = int(row["rated"])
    return {"rated": rated, "satisfied": int(row["satisfied"]), "by_reporter": int(row["by_reporter"]),
            "rate": (row["satisfied"] / rated) if rated else None}
