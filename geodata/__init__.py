"""Domain and persistence: models, migrations, spatial queries, workflow, services.

Never imports dash, layers or callbacks.
"""
