"""The event service: report, route, move through the loop, watch deadlines, measure.

Public entry points validate their input and delegate to private helpers; they
run inside the caller's session and transaction and never commit, so a callback
or HTTP handler decides where the transaction ends (and a failure writes
nothing). Access is enforced by row-level security (the session's scope); the
role checks here give a clear message before PostgreSQL would refuse.

By responsibility:

* :mod:`~geodata.events.intake` — :func:`create_event`: validate, route by location
  inside PostGIS, idempotent on ``client_key``.
* :mod:`~geodata.events.transition` — :func:`transition`, the only writer of
  ``event.state`` (optimistic lock on ``version``, :mod:`geodata.workflow` rules,
  one history row per change, idempotent on ``client_key``); :func:`add_note`.
  :mod:`~geodata.events.changes` holds what each action sets.
* :mod:`~geodata.events.history` — history rows (:func:`record_history`) and photos.
* :mod:`~geodata.events.deadlines` — :func:`check_overdue` marks and escalates (督办).
* :mod:`~geodata.events.indicators` — 结案率, 按期结案率, 返工率, handling time, open-overdue.
* :mod:`~geodata.events.read` — one event, timeline, photos, categories, public records.
* :mod:`~geodata.events.clients` — Open311 API keys.
* :mod:`~geodata.events.checks`, :mod:`~geodata.events.types`, :mod:`~geodata.events.errors`.

Who acts (:class:`Actor`, :class:`ApiClient`) lives in :mod:`geodata.identity`.
Errors are typed and bilingual (``.message_zh`` / ``.message_en``, ``code``, ``http_status``).
"""
from __future__ import annotations

from geodata.events.checks import (
    DEFAULT_BOUNDARY_M, MAX_ACCURACY_M, MAX_DESCRIPTION, MAX_NOTE, MAX_PHOTO_BYTES, MAX_PHOTOS,
    boundary_metres, sniff_image,
)
from geodata.events.clients import create_api_client, deactivate_api_client, find_api_client
from geodata.events.deadlines import check_overdue
from geodata.events.errors import (
    EventError, EventInputError, EventNotFound, InvalidTransition, PermissionDenied, StaleVersion,
)
from geodata.events.history import record_history
from geodata.events.indicators import GROUPABLE, indicators, indicators_by_village, indicators_grouped
from geodata.events.intake import create_event
from geodata.events.read import (
    PUBLIC_FIELDS, categories, event_history, event_photos, get_event, photo_bytes, public_requests,
    reference_lists,
)
from geodata.events.transition import NOTE, add_note, photo_step, transition
from geodata.events.types import (
    PHOTO_STEPS, POSITION_SOURCES, EventRef, Indicators, PhotoIn, TransitionResult,
)
from geodata.identity import Actor, ApiClient

__all__ = [
    "Actor", "EventRef", "TransitionResult", "Indicators", "ApiClient", "PhotoIn",
    "EventError", "EventInputError", "EventNotFound", "StaleVersion", "InvalidTransition", "PermissionDenied",
    "create_event", "transition", "add_note", "record_history", "check_overdue", "indicators",
    "indicators_by_village", "indicators_grouped",
    "get_event", "event_history", "event_photos", "photo_bytes", "categories", "reference_lists",
    "public_requests", "sniff_image", "boundary_metres", "photo_step",
    "create_api_client", "find_api_client", "deactivate_api_client",
    "DEFAULT_BOUNDARY_M", "MAX_ACCURACY_M", "MAX_DESCRIPTION", "MAX_NOTE", "MAX_PHOTO_BYTES", "MAX_PHOTOS",
    "GROUPABLE", "NOTE", "PUBLIC_FIELDS", "PHOTO_STEPS", "POSITION_SOURCES",
]
