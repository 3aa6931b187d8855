"""The layer registry: short name → layer. A new layer is its module + one line here.

Order is drawing order in the layer panel (top to bottom).
"""
from layers.base import Layer
from layers.events import EventLayer
from layers.grids import GridLayer
from layers.labels import LabelLayer
from layers.outline import CountyLayer, TownLayer
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
        PopulationLayer(),
        ResourceLayer(),
        SensorLayer(),
        EventLayer(),
        LabelLayer(),
    )
}


def get(name: str) -> Layer | None:
    return LAYERS.get(name)
