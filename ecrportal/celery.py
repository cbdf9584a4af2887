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
# live gauges with it.
@signals.worker_init.connect
def _worker_metrics(**kwargs):
    from tasks_app.lib import metrics

    metrics.role_set("worker")
    metrics.files_clear("worker")


@signals.beat_init.connect
def _beat_metrics(**kwargs):
    from tasks_app.lib import metrics

    metrics.role_set("beat")
    metrics.files_clear("beat")


@signals.worker_process_shutdown.connect
def _worker_process_metrics(pid=None, **kwargs):
    from tasks_app.lib import metrics

    metrics.process_dead("worker", pid or os.getpid())
