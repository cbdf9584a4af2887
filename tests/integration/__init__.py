"""Real processes: make run, make demo, gunicorn, Celery worker and beat over Redis;
the Docker files."""
