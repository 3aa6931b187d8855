"""Component ids shared by layout and callbacks."""
MAP = "map"
URL = "url"
LANG = "lang"
LAYER_KEYS = "layer-keys"
DETAILS = "details"
LEGEND = "legend"
SEARCH = "village-search"
TICK = "map-tick"
LIVE_COUNTERS = "live-counters"


def layer(name: str) -> dict:
    return {"type": "layer", "name": name}


def toggle(name: str) -> dict:
    return {"type": "layer-toggle", "name": name}


def subtypes(name: str) -> dict:
    return {"type": "subtype-toggle", "name": name}


def signal(name: str) -> dict:
    """A store whose ``data`` a callback bumps after a change; layers with ``name`` in
    ``Layer.reload_on`` reload on it (callbacks/map.py ``reload_on_signal``)."""
    return {"type": "signal", "name": name}


# -- events UI (callbacks/events.py, map_app/event_ui.py) --------------------------
EVENT_POINT = "event-point"                # store: the last clicked map point {lat, lon, kind}
EVENT_REPORT_BAR = "event-report-bar"      # "上报事件" offer for that point, above the details panel
EVENT_REPORT_OPEN = "event-report-open"
EVENT_PICK = "event-pick"                  # LayerGroup with the marker of the clicked point
EVENT_MODAL = "event-report-modal"
EVENT_FORM = "event-report-form"
EVENT_KEY = "event-report-key"             # idempotency key, made when the form opens
EVENT_FIELD = "event-report-field"         # pattern {"type": EVENT_FIELD, "field": name}
EVENT_PHOTOS = "event-report-photos"
EVENT_PHOTO_LIST = "event-report-photo-list"
EVENT_LOCATION = "event-report-location"
EVENT_SUBMIT = "event-report-submit"
EVENT_CANCEL = "event-report-cancel"
EVENT_RESULT = "event-report-result"
EVENT_REFRESH = signal("events-changed")   # store: bumped after every change (table, indicators, layer)
EVENT_DRAWER = "evt-drawer"
EVENT_DRAWER_TOGGLE = "evt-drawer-toggle"
EVENT_DRAWER_OPEN = "evt-drawer-open"
EVENT_TABLE = "evt-table"
EVENT_TABLE_COUNT = "evt-table-count"
EVENT_INDICATORS = "evt-indicators"
EVENT_FILTER = "evt-filter"                # pattern {"type": EVENT_FILTER, "key": state|class|range|village}


def event_field(name: str) -> dict:
    return {"type": EVENT_FIELD, "field": name}


def event_filter(key: str) -> dict:
    return {"type": EVENT_FILTER, "key": key}
