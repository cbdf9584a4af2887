"""The alert rules and the Grafana dashboard of deploy/ (issue 25 §1): promtool checks the
rules and runs their unit tests (synthetic series that fire and don't fire each alert);
every metric the rules and the dashboard name is one the portal's /metrics answers."""

import json
import re
import shutil
import subprocess

import pytest
import yaml

from tasks_app.lib import metrics
from tasks_app.services.metrics import metrics_text
from tasks_app.tasks import refresh_tick
from tests.factories import give_credential, make_job, make_plan, make_task, make_team
from tests.helpers import ROOT, metric_samples, require

RULES = ROOT / "deploy" / "prometheus" / "ecrportal-rules.yml"
RULES_TESTS = ROOT / "deploy" / "prometheus" / "ecrportal-rules.test.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "ecrportal-dashboard.json"
METRIC_NAME = re.compile(r"\becrportal_[a-z0-9_]+")
ALERTS = {
    "ECRPortalCredentialExpiringWithoutRefresh",
    "ECRPortalRefreshFailing",
    "ECRPortalAWSThrottling",
    "ECRPortalBeatSilent",
    "ECRPortalDueWorkWaiting",
    "ECRPortalWorkerSilent",
    "ECRPortalBrokerDown",
    "ECRPortalCredentialsExpired",
    "ECRPortalDown",
}


def _promtool(*args: str) -> subprocess.CompletedProcess:
    promtool = shutil.which("promtool")
    require(promtool is not None, "promtool is not installed (Debian: apt-get install prometheus)")
    return subprocess.run(
        [promtool, *args], cwd=RULES.parent, capture_output=True, text=True, timeout=120
    )


def _rules() -> list[dict]:
    return [
        rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]
    ]


def dashboard_expressions() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [target["expr"] for panel in panels for target in panel["targets"]]


def test_promtool_accepts_the_rules():
    checked = _promtool("check", "rules", RULES.name)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in checked.stdout


def test_promtool_unit_tests_fire_and_spare_each_alert():
    tested = _promtool("test", "rules", RULES_TESTS.name)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout
    # Every alert has a case in the unit tests, with and without firing.
    cases = yaml.safe_load(RULES_TESTS.read_text())["tests"]
    checks = [check for case in cases for check in case["alert_rule_test"]]
    assert {c["alertname"] for c in checks if c["exp_alerts"]} == ALERTS
    assert {c["alertname"] for c in checks if not c["exp_alerts"]} == ALERTS


def test_every_alert_waits_has_a_severity_and_says_what_to_do():
    rules = _rules()
    assert {rule["alert"] for rule in rules} == ALERTS
    for rule in rules:
        assert re.fullmatch(r"\d+m", rule["for"]), rule["alert"]
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"]
        assert rule["annotations"]["description"]


def test_the_dashboard_shows_every_metric_the_alerts_watch():
    watched = {name for rule in _rules() for name in METRIC_NAME.findall(rule["expr"])}
    shown = {name for expr in dashboard_expressions() for name in METRIC_NAME.findall(expr)}
    assert watched <= shown, watched - shown
    ids = [panel["id"] for panel in json.loads(DASHBOARD.read_text())["panels"]]
    assert len(ids) == len(set(ids))


@pytest.mark.django_db
def test_every_metric_named_in_the_rules_and_the_dashboard_is_in_metrics(metrics_dir):
    # A portal that has done a little of everything, so that every family has a sample.
    give_credential(make_task(make_job(make_plan(make_team("Platform")))))
    refresh_tick()
    metrics.refresh_counted(ok=False, cause="AccessDenied")
    metrics.AWS_CALLS.labels("api.ecr:GetAuthorizationToken", "throttled").inc()
    metrics.api_request("api-docker-config", 200, 0.01)
    metrics.authentication_failed("token")
    metrics.delivery_counted(channel="email", state="sent")
    answered = {name for name, _labels in metric_samples(metrics_text())}

    named = {name for rule in _rules() for name in METRIC_NAME.findall(rule["expr"])}
    named |= {name for expr in dashboard_expressions() for name in METRIC_NAME.findall(expr)}
    assert named, "no metric found in the rules and the dashboard"
    assert named <= answered, named - answered
