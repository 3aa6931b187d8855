"""The grid worker's field app, server side: tasks, patrols, check-ins, coverage, retention.

Pure services on a scoped session (no Flask, no Dash): map_app/field_api.py is the
HTTP edge. Distances, lengths and buffers are computed in PostGIS on geography or
in the metric CRS (EPSG:4549), never in degrees. Track positions are personal
data; migration 0018's row-level security decides who reads them.

Modules: :mod:`~geodata.field.common` (errors, input checks, ISO weeks),
:mod:`~geodata.field.tasks`, :mod:`~geodata.field.patrol`,
:mod:`~geodata.field.coverage`, :mod:`~geodata.field.retention`.
"""
