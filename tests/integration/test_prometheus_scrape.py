"""A real Prometheus scrapes a live portal (issue 25 §1): Debian's `prometheus` on
127.0.0.1, with the bearer token README's scrape config shows and the alert rules of
deploy/prometheus loaded, answers a query for a portal metric; the same scrape with a
wrong token gets nothing; every expression of the Grafana dashboard is one Prometheus
accepts."""

import json
import shutil
import urllib.parse
from datetime import timedelta

import pytest

from tests.factories import give_credential, make_job, make_plan, make_task, make_team
from tests.helpers import (
    Process,
    free_port,
    http_get,
    portal_env,
    require,
    wait_for,
    web_process,
)
from tests.project.test_monitoring import ALERTS, RULES, dashboard_expressions

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

TOKEN = "scrape-token-for-the-prometheus-test-0001"


def _query(port: int, expr: str) -> dict:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    status, body = http_get(url)
    assert status in (200, 0), body  # 0: Prometheus is not up yet
    return json.loads(body) if status == 200 else {}


def _values(port: int, expr: str) -> list[float]:
    answer = _query(port, expr)
    return [float(r["value"][1]) for r in answer.get("data", {}).get("result", [])]


def test_a_real_prometheus_scrapes_the_portal_with_its_token(tmp_path):
    binary = shutil.which("prometheus")
    require(binary is not None, "prometheus is not installed (Debian: apt-get install prometheus)")
    give_credential(
        make_task(make_job(make_plan(make_team("Platform")))), expires_in=timedelta(hours=3)
    )
    web_port, prometheus_port = free_port(), free_port()
    env = portal_env(tmp_path, ECRPORTAL_METRICS_TOKEN=TOKEN)
    (tmp_path / "token").write_text(TOKEN)
    (tmp_path / "wrong-token").write_text("not-the-token")
    target = {"targets": [f"127.0.0.1:{web_port}"]}
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [
            {
                "job_name": job,
                "authorization": {"credentials_file": str(tmp_path / job)},
                "static_configs": [target],
            }
            for job in ("token", "wrong-token")
        ],
    }
    (tmp_path / "prometheus.yml").write_text(json.dumps(config))  # JSON is YAML
    prometheus = Process(
        "prometheus",
        [
            binary,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prometheus_port}",
        ],
        env,
        tmp_path / "prometheus.log",
    )
    web = web_process(env, tmp_path, web_port).start()
    prometheus.start()
    try:
        # Prometheus listens before it is ready (its storage loads), answering 503 then.
        wait_for(
            lambda: http_get(f"http://127.0.0.1:{prometheus_port}/-/ready")[0] == 200,
            timeout=60,
            what="Prometheus to be ready",
        )
        wait_for(
            lambda: _values(prometheus_port, "ecrportal_credential_earliest_expiry_seconds"),
            timeout=60,
            what="Prometheus to have scraped the portal's credential expiry",
        )
        [earliest] = _values(
            prometheus_port, 'ecrportal_credential_earliest_expiry_seconds{job="token"}'
        )
        assert 3 * 3600 - 300 < earliest <= 3 * 3600
        assert _values(prometheus_port, 'up{job="token"}') == [1.0]
        wait_for(
            lambda: _values(prometheus_port, 'up{job="wrong-token"}') == [0.0],
            timeout=30,
            what="the scrape with a wrong token to be refused",
        )
        assert not _values(prometheus_port, '{job="wrong-token", __name__=~"ecrportal_.+"}')

        # The rules loaded and evaluate without error; the dashboard's queries parse.
        assert {rule["name"] for rule in _rules(prometheus_port)} == ALERTS
        wait_for(
            lambda: all(r["health"] == "ok" for r in _rules(prometheus_port)),
            timeout=30,
            what="every rule to have been evaluated without error",
        )
        for expr in dashboard_expressions():
            answer = _query(prometheus_port, expr.replace("$__rate_interval", "1m"))
            assert answer["status"] == "success", (expr, answer)
    finally:
        prometheus.stop()
        web.stop()


def _rules(port: int) -> list[dict]:
    status, body = http_get(f"http://127.0.0.1:{port}/api/v1/rules")
    assert status == 200, body
    return [r for g in json.loads(body)["data"]["groups"] for r in g["rules"]]
