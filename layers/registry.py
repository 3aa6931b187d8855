"""The layer registry: short name → layer. A new layer is its module + one line here.

Order is drawing order in the layer panel (top to bottom).
"""
from layers.base import Layer
from layers.events import EventLayer
from layers.grids import GridLayer
from layers.labels import LabelLayer
from layers.outline import CountyLayer, TownLayer
from layers.patrol import PatrolCoverageLayer
from layers.population import PopulationLayer
from layers.resources import ResourceLayer
from layers.sensors import SensorLayer
from layers.villages import VillageLayer

LAYERS: dict[str, Layer] = {
    layer.name: layer
    for layer in (
        CountyLayer(),
        VillageLayer(),
        TownLayer(),
        GridLayer(),
        PatrolCoverageLayer(),
        PopulationLayer(),
        ResourceLayer(),
        SensorLayer(),
        EventLayer(),
        LabelLayer(),
    )
}


def get(name: str) -> Layer | None:
    return LAYERS.get(name)


def layers_for(session) -> dict[str, Layer]:
    """Built-in layers plus the imported (custom) ones, in panel order."""
    from layers.custom import custom_layers

    out = dict(LAYERS)
    for layer in custom_layers(session):
        out[layer.name] = layer
    return out


def resolve(name: str, session) -> Layer | None:
    """The layer called ``name``: a built-in one, or an imported one (looked up in the database)."""
    if name in LAYERS:
        return LAYERS[name]
    from layers.custom import PREFIX, custom_layers

    if name.startswith(PREFIX):
        return next((layer for layer in custom_layers(session) if layer.name == name), None)
    return None
