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
