"""The project as a whole: docs, code layout, locks, settings (ecrportal/), Celery and
database configuration."""
