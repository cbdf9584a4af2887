import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ecrportal.settings")

app = Celery("ecrportal")

# Every Celery setting lives in ecrportal/settings.py under the CELERY_ prefix.
app.config_from_object("django.conf:settings", namespace="CELERY")

# Finds tasks_app/tasks.py.
app.autodiscover_tasks()
