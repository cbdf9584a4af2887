import os

from celery import Celery, signals

from ecrportal import broker

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ecrportal.settings")

# kombu's Redis transport with three fixes for a worker that lost Redis for a moment, which
# without them could stop, or stay connected and consume nothing (ecrportal/broker.py).
broker.register()

app = Celery("ecrportal")

# Every Celery setting lives in ecrportal/settings.py under the CELERY_ prefix.
app.config_from_object("django.conf:settings", namespace="CELERY")

# Finds tasks_app/tasks.py.
app.autodiscover_tasks()


# Metrics (tasks_app/lib/metrics.py): the worker's and beat's processes write their files
# under their own role, each clearing its own at start; a pool process that ends takes its
# live gauges with it. With ECRPORTAL_METRICS_PORT set (a pod whose folder web does not
# read), the main process serves the folder's metrics on that port.
def _metrics_start(role: str) -> None:
    from django.conf import settings

    from tasks_app.lib import metrics

    metrics.role_set(role)
    metrics.files_clear(role)
    if settings.METRICS_PORT:
        metrics.listener_start(settings.METRICS_PORT)


@signals.worker_init.connect
def _worker_metrics(**kwargs):
    _metrics_start("worker")


@signals.beat_init.connect
def _beat_metrics(**kwargs):
    _metrics_start("beat")


@signals.worker_process_shutdown.connect
def _worker_process_metrics(pid=None, **kwargs):
    from tasks_app.lib import metrics

    metrics.process_dead("worker", pid or os.getpid())
