"""Event photos over HTTP, read with the logged-in user's scope.

``GET /events/<event_id>/photos/<photo_id>`` answers the image bytes when the
photo belongs to that event and row-level security lets the user see it;
otherwise 404 (a photo of another village looks exactly like a missing one).
The login guard of map_app/auth.py covers the route (it is not public).

Wire it in the composition root with :func:`init_event_routes`.
"""
from __future__ import annotations

from flask import Blueprint, Response, abort, current_app

from geodata.queries.event_list import photo_of_event

blueprint = Blueprint("event_routes", __name__)


@blueprint.get("/events/<int:event_id>/photos/<int:photo_id>")
def event_photo(event_id: int, photo_id: int):
    database = current_app.extensions["dvmap"]
    with database.session() as session:  # the request's scope, from the server-side login
        found = photo_of_event(session, event_id, photo_id)
    if found is None:
        abort(404)
    content_type, data = found
    response = Response(data, mimetype=content_type)
    # Personal/case data: the browser may keep it, shared caches may not.
    response.headers["Cache-Control"] = "private, max-age=3600"
    response.headers["Content-Disposition"] = f'inline; filename="event-{event_id}-{photo_id}"'
    return response


def init_event_routes(server) -> None:
    """Register the event photo route on the Flask ``server``."""
    if blueprint.name not in server.blueprints:
        server.register_blueprint(blueprint)
