"""Component ids of the analysis page (/analysis)."""
LANG = "an-lang"
MAP = "an-map"
OUTLINE = "an-outline"
RESULT = "an-result"
EXTRA = "an-extra"
RASTER_LAYER = "an-raster"
WHATIF_LAYER = "an-whatif-layer"
MAP_LEGEND = "an-map-legend"
TABS = "an-tabs"
CATEGORIES = "an-categories"
DAYS = "an-days"
VILLAGES = "an-villages"
CMP_RES = "an-cmp-res"
CMP_PRESET = "an-cmp-preset"
CMP_BEFORE = "an-cmp-before"
CMP_AFTER = "an-cmp-after"
HEAT_RES = "an-heat-res"
EPS = "an-eps"
MINPTS = "an-minpts"
COV_TYPE = "an-cov-type"
COV_DIST = "an-cov-dist"
COV_MEASURE = "an-cov-measure"
COV_LEVEL = "an-cov-level"
WHATIF_ON = "an-whatif-on"
WHATIF_CLEAR = "an-whatif-clear"
WHATIF_POINTS = "an-whatif-points"
RASTER = "an-raster-id"
ZONAL_LEVEL = "an-zonal-level"
ZONAL_STAT = "an-zonal-stat"
RASTER_SHOW = "an-raster-show"
PROGRESS = "an-progress"
PROGRESS_TEXT = "an-progress-text"
PROGRESS_BOX = "an-progress-box"
CANCEL = "an-cancel"
MESSAGE = "an-message"
SUMMARY = "an-summary"
DOWNLOAD = "an-download"
DETAIL = "an-detail"
JOB = "an-job"
RESULT_REF = "an-result-ref"
EVENT_ITEMS = "an-event-items"
EVENT_CHECKS = "an-event-checks"
BULK_MSG = "an-bulk-msg"
TASK_BUTTON = "an-task-button"
TASK_MSG = "an-task-msg"
CELL = "an-cell"
LAYER_EXPORTS = "an-layer-exports"
CHOSEN = "an-chosen-villages"
KINDS = ("hotspots", "compare", "heat", "clusters", "coverage", "zonal")
HOT = ("an-hot-unit", "an-hot-res", "an-hot-weights", "an-hot-band", "an-hot-transform", "an-hot-perms", "an-hot-fdr")


def run(kind: str) -> dict:
    return {"type": "an-run", "kind": kind}


def export(fmt: str) -> dict:
    return {"type": "an-export", "fmt": fmt}


def bulk(action: str) -> dict:
    return {"type": "an-bulk", "action": action}
