"""Development tools: never imported by the portal (ecrportal/, tasks_app/), never in the image.

They may use the development dependencies (requirements-dev.lock), such as moto.
"""
