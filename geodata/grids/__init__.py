"""The grid service: draw, edit, split, merge, delete and staff a village's grids.

Grid managers (网格管理员) divide each village into grids. This package is the one
place that changes them; the editor page (callbacks/grids.py) only parses input,
calls it and renders the result.

* :func:`validate` — checks a candidate polygon in PostGIS: valid geometry (with
  ``ST_IsValidReason``), inside its village (else the clipped-away area in m² and
  the clipped geometry), no overlap with other current grids (area in m² and the
  overlap geometry to highlight), the village's uncovered area after the change
  (m², % and geometry), minimum area. Vertex count, zero-area and duplicate-vertex
  rings are caught before anything reaches the database (:func:`parse_polygon`).
* :func:`snap` — moves vertices onto the village boundary and neighbouring grid
  edges within a tolerance in metres (the metric CRS), inserts the neighbours'
  vertices into the snapped edges, then makes coinciding vertices bit-identical
  to the neighbours' in the storage CRS, so shared edges are exact; slivers
  thinner than the tolerance are trimmed (overlaps, outside the village) or filled
  (gaps along the candidate).
* :func:`save_grid`, :func:`split_grid`, :func:`merge_grids`, :func:`delete_grid`,
  :func:`assign_worker`, :func:`renumber_village`, :func:`undo_last` — each is
  one *change*: old grid versions are closed (``valid_to``), new ones inserted
  (``valid_from``), one ``grid_change`` row says who, when and what, open events
  of the changed area are re-routed (:mod:`geodata.grid_reroute`). Every change
  takes the village's advisory lock, checks the caller's expected versions
  (optimistic locking → :class:`StaleGrid`), and runs in a savepoint: on any
  error nothing is written and the caller's transaction stays usable. The
  database re-checks the topology itself (migration 0006's ``grid_topology``
  trigger); :func:`preview` runs a change and rolls it back, to show which events
  would be re-routed before the manager confirms.
* :func:`grid_at` — which grid a point was in at a given time (versions).

Functions take a scoped session and never commit. Errors are typed and bilingual.

The package, by responsibility: :mod:`~geodata.grids.rules` (limits, who may
edit), :mod:`~geodata.grids.errors`, :mod:`~geodata.grids.results`,
:mod:`~geodata.grids.geometry` (pure, before PostGIS), :mod:`~geodata.grids.read`,
:mod:`~geodata.grids.validate`, :mod:`~geodata.grids.snap`,
:mod:`~geodata.grids.write` (what every change shares), :mod:`~geodata.grids.changes`
and :mod:`~geodata.grids.renumber`. Every public name is re-exported here, so
callers keep ``from geodata import grids as G``.
"""
from __future__ import annotations

from geodata.grids.changes import (assign_worker, delete_grid, merge_grids, preview, save_grid, split_grid,
                                   undo_last)
from geodata.grids.errors import (VILLAGE_FULL, GridError, GridInputError, GridNotFound, GridPermissionDenied,
                                  GridTopologyError, Issue, StaleGrid)
from geodata.grids.geometry import count_vertices, drop_specks, parse_line, parse_polygon, ring_area, ring_issue
from geodata.grids.read import (change_history, current_grid, default_village, editable_villages, grid_at,
                                grid_versions, grid_workers, last_change, village_gaps, village_grids, village_info)
from geodata.grids.renumber import renumber_plan, renumber_village
from geodata.grids.results import KEEP, ChangeResult, SnapResult, Validation
from geodata.grids.rules import (AREA_EPSILON_M2, DEFAULT_SNAP_M, MAX_SNAP_M, MAX_VERTICES, MIN_AREA_M2, WRITE_ROLES,
                                 may_edit)
from geodata.grids.snap import snap
from geodata.grids.validate import validate

__all__ = [
    "MIN_AREA_M2", "MAX_VERTICES", "AREA_EPSILON_M2", "DEFAULT_SNAP_M", "MAX_SNAP_M", "WRITE_ROLES",
    "Issue", "Validation", "SnapResult", "ChangeResult",
    "GridError", "GridInputError", "GridNotFound", "StaleGrid", "GridPermissionDenied", "GridTopologyError",
    "parse_polygon", "parse_line", "ring_issue", "ring_area", "count_vertices", "drop_specks", "may_edit",
    "validate", "snap", "save_grid", "split_grid", "merge_grids", "delete_grid", "assign_worker",
    "renumber_village", "renumber_plan", "undo_last", "last_change", "preview", "change_history",
    "village_grids", "village_gaps", "village_info", "editable_villages", "grid_workers", "grid_at",
    "grid_versions", "current_grid", "VILLAGE_FULL", "default_village",
]

# -- rules (the database's copy lives in migration 0006: dvmap_grid_rules()) ----------
