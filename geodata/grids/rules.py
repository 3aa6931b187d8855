"""The grid rules and who may change grids.

The database's copy of the first three lives in migration 0006
(``dvmap_grid_rules()``); a unit test keeps the two equal.
"""
from __future__ import annotations

#: Smallest grid accepted (m²): anything smaller is a slip of the mouse or a sliver.
MIN_AREA_M2 = 100.0
#: Most vertices one grid may have; hand-drawn grids have tens, traced ones hundreds.
MAX_VERTICES = 2000
#: Overlaps / outside areas below this (m²) are floating-point noise of CRS round trips.
AREA_EPSILON_M2 = 0.5
#: Default and largest snapping tolerance (m).
DEFAULT_SNAP_M = 5.0
MAX_SNAP_M = 50.0
#: An overlap is a *sliver* that "Snap" removes only when it is thin (mean width 2·area/perimeter
#: at most this, m) and small (below :data:`SLIVER_MAX_SHARE` of the candidate's area); a larger
#: overlap has to be redrawn or clipped to the free area.
SLIVER_WIDTH_M = 10.0
SLIVER_MAX_SHARE = 0.01
#: Roles that may change grids.
WRITE_ROLES = frozenset({"grid_manager", "admin", "system"})
#: Coordinates go to the browser and back at full double precision, so vertices
#: shared with neighbours stay bit-identical.
GJ_DIGITS = 15


def may_edit(role: str | None) -> bool:
    """True if ``role`` may change grids."""
    return role in WRITE_ROLES
