"""The schema, declared once: SQLAlchemy 2 declarative models with GeoAlchemy2 geometry columns.

``Base.metadata`` is what Alembic compares with the database (``dvmap migrate
--check``; tests/integration/test_models.py), so a new column is one line in a
model plus ``alembic revision --autogenerate``. What SQLAlchemy cannot declare
stays in the migrations and out of the comparison (see :mod:`geodata.models.autogen`):
row-level security, triggers, SQL functions, grants, the event partitions and
storage settings.

Modules by domain: :mod:`~geodata.models.admin` (county, town, village, person),
:mod:`~geodata.models.grids`, :mod:`~geodata.models.resources` (resources,
population), :mod:`~geodata.models.events`, :mod:`~geodata.models.sensors`,
:mod:`~geodata.models.users` (users, audit), :mod:`~geodata.models.imports`,
:mod:`~geodata.models.analysis`, :mod:`~geodata.models.bigscreen` (evaluation,
daily summary).
"""
from geodata.models.base import Base, geometry
from geodata.models.admin import County, Person, Town, Village
from geodata.models.grids import Grid, GridChange
from geodata.models.resources import Population, PopulationPoint, Resource, ResourceType
from geodata.models.events import (ApiClient, Department, Event, EventClass, EventHistory, EventPhoto,
                                   EventRequest, EventRouting, EventSla, EventSource, EventSubclass,
                                   EventUrgency)
from geodata.models.sensors import (Sensor, SensorAlarm, SensorIngestCounter, SensorIngestRejection,
                                    SensorReading, SensorRule, SensorType)
from geodata.models.users import AppUser, AuditLog, LoginThrottle
from geodata.models.imports import CustomFeature, CustomLayer, ImportReport, RasterDataset
from geodata.models.analysis import ZonalStat
from geodata.models.bigscreen import EvalGroup, EvalIndicator, EvalManualValue, EventDaily
from geodata.models.field import Checkin, Checkpoint, Patrol, PatrolPoint
from geodata.models.public import CitizenPoints, EventFollower, EventMerge, PublicReport, SensitiveSubclass

__all__ = [
    "Base", "geometry",
    "County", "Town", "Village", "Person",
    "Grid", "GridChange",
    "ResourceType", "Resource", "Population", "PopulationPoint",
    "Department", "EventClass", "EventSubclass", "EventUrgency", "EventSource", "EventRouting", "EventSla",
    "Event", "EventRequest", "EventHistory", "EventPhoto", "ApiClient",
    "SensorType", "Sensor", "SensorReading", "SensorRule", "SensorAlarm", "SensorIngestCounter",
    "SensorIngestRejection",
    "AppUser", "AuditLog", "LoginThrottle",
    "ImportReport", "CustomLayer", "CustomFeature", "RasterDataset",
    "ZonalStat",
    "EvalGroup", "EvalIndicator", "EvalManualValue", "EventDaily",
    "Patrol", "PatrolPoint", "Checkpoint", "Checkin",
    "PublicReport", "EventFollower", "EventMerge", "CitizenPoints", "SensitiveSubclass",
]
