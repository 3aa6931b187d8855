"""Value types the event service takes and returns."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime

# the schema holds the allowed values (CHECKs of migration 0017); re-exported here
from geodata.models.events import PHOTO_STEPS, POSITION_SOURCES

__all__ = ["EventRef", "TransitionResult", "Indicators", "PhotoIn", "PHOTO_STEPS", "POSITION_SOURCES"]



@dataclass(frozen=True)
class PhotoIn:
    """A photo with its step and where it was taken (the field app sends these).

    Parameters
    ----------
    data : bytes
        The JPEG, PNG or WebP file.
    step : str, optional
        One of :data:`PHOTO_STEPS`; None lets the service derive it from the action
        (report → ``report``, start → ``before``, handle → ``after``,
        verify_pass/verify_fail → ``verify``, anything else → ``report``).
    lon, lat : float, optional
        Where the phone was when taking it (storage CRS degrees); both or neither.
    accuracy_m : float, optional
        The position's accuracy radius in metres.
    """

    data: bytes
    step: str | None = None
    lon: float | None = None
    lat: float | None = None
    accuracy_m: float | None = None


@dataclass(frozen=True)
class EventRef:
    """What :func:`geodata.events.create_event` returns: the event's identity and route."""

    id: int
    reported_at: datetime
    state: str
    version: int
    created: bool
    village_id: int | None = None
    town_id: int | None = None
    grid_uid: str | None = None
    grid_id: int | None = None
    worker_id: int | None = None
    department: str | None = None
    queue: str | None = None
    outside_grid: bool = False
    boundary_pending: bool = False
    candidate_grid_uids: tuple[str, ...] = ()
    history_id: int | None = None


@dataclass(frozen=True)
class TransitionResult:
    """What :func:`geodata.events.transition` returns."""

    event_id: int
    action: str
    from_state: str
    to_state: str
    version: int
    history_id: int
    changes: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Indicators:
    """GB-style performance indicators for one period (see :func:`geodata.events.indicators`)."""

    start: datetime
    end: datetime
    as_of: datetime
    reported: int
    should_close: int       # 应结案数
    closed: int             # 结案数
    closed_on_time: int     # 按期结案数
    postponed: int          # 缓办数
    reworked: int           # 返工数
    closure_rate: float | None        # 结案率
    on_time_rate: float | None        # 按期结案率
    rework_rate: float | None         # 返工率
    avg_handling_hours: float | None  # 平均处置时长
    open_overdue: int                 # 超期未结 (as of ``as_of``, any period)

    def as_dict(self) -> dict:
        return asdict(self)
