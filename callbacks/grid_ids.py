"""Component ids of the grid editor page (/grids), shared by its layout and callbacks."""
MAP = "grid-map"
LANG = "grid-lang"
VILLAGE = "grid-village"
OUTLINE = "grid-outline"
VILLAGES = "grid-villages"        # every village, drawn while none is chosen (click one to open it)
GRIDS = "grid-grids"
GAPS = "grid-gaps"
OVERLAP = "grid-overlap"
PROBLEM = "grid-problem"
DRAW = "grid-draw"
SKETCH = "grid-sketch"            # the candidate being drawn/edited (geometry + mode), rendered by JS
JS_ACK = "grid-js-ack"
MODE = "grid-mode"                # {"mode": idle|new|edit|split|merge, "uid", "version", "merge": [...]}
SELECTED = "grid-selected"        # {"uid", "version", "code"} of the grid clicked last
PENDING = "grid-pending"          # the change waiting for confirmation
REFRESH = "grid-refresh"          # bumped after each saved change: reload grids, table, history
VILLAGE_STATE = "grid-village-state"  # {"village_id", "last_change_id"}
STATS = "grid-stats"
TABLE = "grid-table"
HISTORY = "grid-history"
VALIDATION = "grid-validation"
MESSAGE = "grid-message"
CONFIRM = "grid-confirm"
CONFIRM_BODY = "grid-confirm-body"
TOLERANCE = "grid-tolerance"
WORKER = "grid-worker"
SELECTED_INFO = "grid-selected-info"

BTN_NEW = "grid-btn-new"
BTN_EDIT = "grid-btn-edit"
BTN_SPLIT = "grid-btn-split"
BTN_MERGE = "grid-btn-merge"
BTN_DELETE = "grid-btn-delete"
BTN_UNDO = "grid-btn-undo"
BTN_RENUMBER = "grid-btn-renumber"
BTN_SNAP = "grid-btn-snap"
BTN_CLIP = "grid-btn-clip"
BTN_SAVE = "grid-btn-save"
BTN_CANCEL = "grid-btn-cancel"
BTN_ASSIGN = "grid-btn-assign"
BTN_CONFIRM = "grid-btn-confirm"
BTN_CONFIRM_CANCEL = "grid-btn-confirm-cancel"


def row(uid: str) -> dict:
    """A clickable row of the grid table."""
    return {"type": "grid-row", "uid": uid}
