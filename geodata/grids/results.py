"""What the grid service returns: validation findings, snapping figures, one change."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from geodata.grids.errors import Issue
from geodata.i18n import pick


@dataclass
class Validation:
    """What :func:`geodata.grids.validate` found; ``ok`` means the candidate may be saved as it is."""

    ok: bool
    errors: list[Issue] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)
    geometry: dict | None = None          # the candidate, GeoJSON
    valid: bool = True
    reason: str | None = None             # ST_IsValidReason when invalid
    reason_location: list[float] | None = None
    area_m2: float | None = None
    vertices: int = 0
    outside_m2: float = 0.0
    other_villages: list[str] = field(default_factory=list)
    clipped: dict | None = None           # candidate ∩ village, offered when it sticks out
    overlap_m2: float = 0.0
    overlaps: list[dict] = field(default_factory=list)   # uid, code, name, area_m2
    overlap_geometry: dict | None = None
    gap_m2: float = 0.0
    gap_pct: float = 0.0
    gap_geometry: dict | None = None
    sliver: bool = False                  # every overlap thin and small: "Snap" removes it
    free: dict | None = None              # candidate minus the grids it overlaps (one polygon), offered as a clip
    free_m2: float = 0.0

    def as_dict(self) -> dict:
        """Plain data (for JSON)."""
        return asdict(self)

    def messages(self, lang: str = "zh") -> list[str]:
        """Every error and warning in ``lang``."""
        return [i.text(lang) for i in self.errors + self.warnings]


@dataclass
class SnapResult:
    """What :func:`geodata.grids.snap` did."""

    geometry: dict
    tolerance_m: float
    moved: int                 # vertices moved onto the village boundary or a neighbour (closing vertex not counted)
    vertices_before: int
    vertices_after: int
    trimmed_m2: float          # slivers cut off (overlaps, outside the village)
    filled_m2: float           # thin gaps along the candidate filled

    def as_dict(self) -> dict:
        """Plain data (for JSON)."""
        return asdict(self)


@dataclass
class ChangeResult:
    """One change to a village's grids."""

    change_id: int
    action: str
    village_id: int
    summary_zh: str
    summary_en: str
    closed_ids: list[int] = field(default_factory=list)
    created: list[dict] = field(default_factory=list)    # id, uid, code, version, name, worker_id, area_m2
    rerouted: list[dict] = field(default_factory=list)
    detail: dict = field(default_factory=dict)

    def summary(self, lang: str = "zh") -> str:
        """The summary in ``lang``."""
        return pick(self.summary_zh, self.summary_en, lang)

    def as_dict(self) -> dict:
        """Plain data (for JSON)."""
        return asdict(self)


class _Keep:
    """Sentinel: leave the grid's worker as it is."""

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return "KEEP"


KEEP = _Keep()
