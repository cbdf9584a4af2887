import json
import re
import subprocess
import sys

from django.conf import settings

from ecrportal.celery import app
from tests.helpers import ROOT, child_environ


def test_the_app_is_configured_for_at_least_once_idempotent_work():
    conf = app.conf
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_serializer == "json"
    assert conf.accept_content == ["json"]
    assert conf.task_ignore_result is True
    assert conf.task_soft_time_limit < conf.task_time_limit < settings.CELERY_VISIBILITY_TIMEOUT
    # What a worker does at start: autodiscovery finds tasks_app/tasks.py.
    app.loader.import_default_modules()
    assert "tasks_app.tasks.canary" in app.tasks
    assert conf.beat_schedule["housekeeping"]["task"] in app.tasks


def test_redis_gets_the_one_visibility_timeout(tmp_path):
    env = {
        **child_environ(portal_settings=False),
        "ECRPORTAL_DATA_DIR": str(tmp_path),
        "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
        "ECRPORTAL_VISIBILITY_TIMEOUT": "7200",
        "ECRPORTAL_TASK_TIME_LIMIT": "600",
    }
    code = (
        "import json, django; django.setup(); from ecrportal.celery import app; c = app.conf; "
        "print(json.dumps([c.broker_url, c.broker_transport_options, c.task_time_limit]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "ecrportal.settings"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    broker_url, options, time_limit = json.loads(result.stdout)
    assert broker_url == "redis://127.0.0.1:6379/0"
    assert options["visibility_timeout"] == 7200
    assert time_limit == 600
    assert options["socket_connect_timeout"] == 5
    # Nothing was created in the data folder for a file-system broker.
    assert not (tmp_path / "broker").exists()


def test_a_process_that_is_not_a_worker_finds_the_tasks_it_queues(tmp_path):
    """gunicorn never imports tasks_app/tasks.py; the services look the tasks up by name."""
    code = (
        "import django; django.setup()\n"
        "import sys\n"
        "from tasks_app.lib import celery_queue as queue\n"
        "assert 'tasks_app.tasks' not in sys.modules\n"
        "names = [queue.CANARY, queue.REFRESH_GROUP, queue.NOTIFICATION_SEND]\n"
        "print([queue.celery_task(name).name for name in names])\n"
    )
    env = {
        **child_environ(),
        "ECRPORTAL_DATA_DIR": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "ecrportal.settings",
        "SECRET_KEY": "test-only",
    }
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(
        [
            "tasks_app.tasks.canary",
            "tasks_app.tasks.refresh_group",
            "tasks_app.tasks.notification_send",
        ]
    )


def test_the_canary_and_ticks_have_their_own_queue_that_every_worker_serves():
    app.loader.import_default_modules()
    route = app.amqp.router.route
    assert {q.name for q in app.amqp.queues.values()} == {"celery", settings.QUICK_QUEUE}
    for queue in app.amqp.queues.values():  # bound apart: a message reaches one queue
        assert queue.exchange.name == queue.routing_key == queue.name
    for name in ("tasks_app.tasks.canary", "tasks_app.tasks.refresh_tick"):
        assert route({}, name)["queue"].name == settings.QUICK_QUEUE
    for name in ("tasks_app.tasks.refresh_group", "tasks_app.tasks.notification_send"):
        assert route({}, name)["queue"].name == "celery"
    # A worker without --queues consumes every queue above: no way of running it narrows it.
    commands = [
        line
        for procfile in ("Procfile", "Procfile.demo")
        for line in (ROOT / procfile).read_text().splitlines()
        if line.startswith("worker:")
    ]
    compose = (ROOT / "docker-compose.yml").read_text()
    commands += [line for line in compose.splitlines() if '"worker"' in line]
    assert len(commands) == 3, commands
    for command in commands:
        assert not re.search(r"--queues|\s-Q", command), command
