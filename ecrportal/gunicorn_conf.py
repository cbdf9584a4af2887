"""Gunicorn settings, shared by `make run` and the Docker image."""

import os

bind = os.environ.get("ECRPORTAL_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("ECRPORTAL_WEB_WORKERS", "2"))
worker_class = "gthread"
# /readyz waits for a worker's answer; threads keep the other requests flowing meanwhile.
threads = int(os.environ.get("ECRPORTAL_WEB_THREADS", "4"))
timeout = 60
graceful_timeout = 20
accesslog = "-"
# The path without its query string (a secret pasted into a URL stays out of the log),
# and the request ID the portal answered with (X-Request-ID), to join the portal's lines.
access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(M)sms %({x-request-id}o)s'
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
# The portal needs no runtime control socket; several instances may share a host.
control_socket_disable = True

if os.environ.get("ECRPORTAL_LOG_FORMAT") == "json":
    # gunicorn's own lines (start, workers, access) as JSON too, like the portal's.
    from tasks_app.lib.log_context import JSON_FORMATTER

    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": JSON_FORMATTER},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json"}},
        "loggers": {
            name: {"handlers": ["console"], "level": "INFO", "propagate": False}
            for name in ("gunicorn.error", "gunicorn.access")
        },
    }

# Metrics (tasks_app/lib/metrics.py): the web workers write their files under the role
# "web", cleared when gunicorn starts; a worker that exits takes its live gauges along.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ecrportal.settings")


def on_starting(server):
    from tasks_app.lib import metrics

    metrics.role_set("web")  # inherited by the workers gunicorn forks
    metrics.files_clear("web")


def child_exit(server, worker):
    from tasks_app.lib import metrics

    metrics.process_dead("web", worker.pid)


def post_worker_init(worker):
    """Once the worker has loaded Django, load the URLconf (and with it every view) and
    move what it imported out of the garbage collector's way: a full collection then
    walks only what requests allocate, not the ~10^5 objects of the loaded code."""
    import gc

    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018 - imports the views
    gc.freeze()
