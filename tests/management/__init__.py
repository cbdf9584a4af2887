"""The manage.py commands (tasks_app/management/)."""
