"""No Docker engine runs here: the compose file's structure is checked with a YAML parser."""

import re

import pytest
import yaml

from tests.helpers import ROOT

PORTAL = ("migrate", "web", "worker", "beat")


@pytest.fixture(scope="module")
def services():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]


def test_it_has_every_service(services):
    assert set(services) == {"postgres", "redis", *PORTAL}


def test_long_running_services_have_health_checks(services):
    for name in ("postgres", "redis", "web", "worker", "beat"):
        check = services[name]["healthcheck"]
        assert check["test"][0] in ("CMD", "CMD-SHELL"), name
        assert check["retries"] >= 3, name
    assert "healthcheck" not in services["migrate"]


def test_services_start_in_order(services):
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert services["migrate"]["restart"] == "no"
    for name in ("web", "worker", "beat"):
        assert services[name]["depends_on"] == {
            "migrate": {"condition": "service_completed_successfully"},
            "postgres": {"condition": "service_healthy"},
            "redis": {"condition": "service_healthy"},
        }, name


def test_each_portal_service_runs_its_command_from_one_image(services):
    commands = {name: " ".join(services[name]["command"]) for name in PORTAL}
    assert "manage.py migrate --noinput" in commands["migrate"]
    assert "manage.py ensure_admin" in commands["migrate"]
    assert commands["web"] == "gunicorn --config python:ecrportal.gunicorn_conf ecrportal.wsgi"
    assert commands["worker"].startswith("celery --app ecrportal worker")
    assert commands["beat"].startswith("celery --app ecrportal beat")
    assert {services[name]["image"] for name in PORTAL} == {"ecrportal:latest"}
    assert services["web"]["healthcheck"]["test"][-1].count("/healthz") == 1


def test_portal_services_use_postgresql_redis_and_production_settings(services):
    for name in PORTAL:
        env = services[name]["environment"]
        assert env["DEBUG"] == "0"
        assert re.fullmatch(
            r"postgres://ecrportal:\$\{POSTGRES_PASSWORD:\?.+\}@postgres:5432/ecrportal",
            env["DATABASE_URL"],
        )
        assert env["CELERY_BROKER_URL"] == "redis://redis:6379/0"
        # Secrets come from the operator's .env and are required, never defaulted.
        assert env["SECRET_KEY"].startswith("${SECRET_KEY:?")
        assert env["ECRPORTAL_ENCRYPTION_KEYS"].startswith("${ECRPORTAL_ENCRYPTION_KEYS:?")
        assert env["ECRPORTAL_SITE_URL"].startswith("${ECRPORTAL_SITE_URL:?")
        # /metrics: off unless the operator sets a token; never a default token.
        assert env["ECRPORTAL_METRICS_TOKEN"] == "${ECRPORTAL_METRICS_TOKEN:-}"
