"""WSGI entry point: ``gunicorn map_app.wsgi:server``."""
from map_app.app import create_app

app = create_app()
server = app.server
