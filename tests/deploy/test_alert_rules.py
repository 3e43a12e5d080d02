"""deploy/prometheus's alert rules: promtool accepts and tests them, every alert is tested firing and
quiet and has its runbook section, and every metric they and the Grafana dashboard use is one the code
exports (README "Alerts and dashboards")."""

import importlib
import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from django.test import Client
from flower.events import get_prometheus_metrics

from tests.deploy.prometheus_rules import (
    GRAFANA,
    PROMETHEUS,
    PROMTOOL,
    RULES,
    RULES_TEST,
    RUNBOOK,
    alert_rules,
    dashboard_metric_names,
    dashboard_targets,
    exposed_series_names,
    exposition_families,
    prometheus_config,
    rule_metric_names,
    runbook_anchors,
)

SEVERITIES = {"critical", "warning"}
_DURATION = re.compile(r"(\d+)(ms|s|m|h|d)")
_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def _promtool(*arguments: str, cwd: Path = PROMETHEUS) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PROMTOOL, *arguments], cwd=cwd, capture_output=True, text=True, check=False, timeout=120
    )


@pytest.mark.prometheus
def test_promtool_checks_the_rules() -> None:
    checked = _promtool("check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in checked.stdout


@pytest.mark.prometheus
def test_promtool_unit_tests_of_the_rules_pass() -> None:
    tested = _promtool("test", "rules", str(RULES_TEST))
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


@pytest.mark.prometheus
def test_prometheus_config_checks_once_its_secret_files_exist(tmp_path: Path) -> None:
    """The shipped prometheus.yml with its two secret files in place (targets and paths are the only
    lines that differ per host)."""
    token, password = tmp_path / "token", tmp_path / "password"
    token.write_text("t" * 32 + "\n")
    password.write_text("p" * 16 + "\n")
    config = prometheus_config(
        web="127.0.0.1:8001", flower="127.0.0.1:5555", token_file=token, password_file=password
    )
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    checked = _promtool("check", "config", str(tmp_path / "prometheus.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def _seconds(duration: str) -> float:
    return sum(int(n) * _SECONDS[unit] for n, unit in _DURATION.findall(duration))


def _checks_by_alert() -> dict[str, list[tuple[float, float]]]:
    """Per alert, (quiet eval time, firing eval time) pairs of the same test case, quiet first."""
    pairs: dict[str, list[tuple[float, float]]] = {}
    for case in yaml.safe_load(RULES_TEST.read_text())["tests"]:
        checks = case.get("alert_rule_test", [])
        for quiet in (c for c in checks if not c.get("exp_alerts")):
            for firing in (c for c in checks if c.get("exp_alerts") and c["alertname"] == quiet["alertname"]):
                if _seconds(quiet["eval_time"]) < _seconds(firing["eval_time"]):
                    pairs.setdefault(quiet["alertname"], []).append(
                        (_seconds(quiet["eval_time"]), _seconds(firing["eval_time"]))
                    )
    return pairs


def test_every_alert_is_tested_quiet_before_it_fires() -> None:
    alerts = {rule["alert"] for rule in alert_rules()}
    pairs = _checks_by_alert()
    assert alerts - pairs.keys() == set(), "alerts without a quiet-then-firing case in rules_test.yml"
    tested = {
        check["alertname"]
        for case in yaml.safe_load(RULES_TEST.read_text())["tests"]
        for check in case.get("alert_rule_test", [])
    }
    assert tested - alerts == set(), "rules_test.yml tests alerts that rules.yml does not define"


def test_every_alert_is_tested_quiet_within_its_for_before_firing() -> None:
    """A quiet evaluation no more than ``for:`` before a firing one: the wait is part of the test."""
    pairs = _checks_by_alert()
    for rule in alert_rules():
        hold = _seconds(rule.get("for", "0s"))
        if hold:
            assert any(firing - quiet <= hold for quiet, firing in pairs[rule["alert"]]), rule["alert"]


def test_every_alert_has_severity_summary_description_and_its_runbook_section() -> None:
    anchors = runbook_anchors()
    for rule in alert_rules():
        name = rule["alert"]
        assert rule["labels"]["severity"] in SEVERITIES, name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name
        assert rule["annotations"]["runbook_url"] == f"docs/runbook.md#{name.lower()}", name
        assert name.lower() in anchors, f"docs/runbook.md has no section {name}"


def _web_series_names(client: Client) -> set[str]:
    """What /metrics serves: the families of every module the web and the Celery processes import,
    and the scrape-time ones its collector reads from the database and Redis."""
    importlib.import_module("tickerproject.asgi")  # the web's modules (routing, consumers, views)
    importlib.import_module("tickerproject.celery").app.loader.import_default_modules()  # the workers'
    client.get("/healthz")  # django-prometheus registers its families on the first request
    scraped = client.get("/metrics")
    assert scraped.status_code == 200, scraped.content
    return exposed_series_names(exposition_families(scraped.content.decode()))


def _flower_series_names() -> set[str]:
    metrics = vars(get_prometheus_metrics()).values()
    return exposed_series_names(
        (family.name, family.type) for metric in metrics for family in metric.collect()
    )


@pytest.mark.django_db
def test_every_metric_of_the_rules_and_the_dashboard_is_exported(
    client: Client, redis_client: object, settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.METRICS_TOKEN = ""  # a loopback client, as in dev
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    exported = _web_series_names(client) | _flower_series_names() | {"up"}
    assert rule_metric_names() - exported == set(), "rules.yml uses metrics nothing exports"
    assert dashboard_metric_names() - exported == set(), "the Grafana dashboard uses metrics nothing exports"


def test_the_dashboard_queries_the_provisioned_datasource() -> None:
    provisioned = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "ticker.yml").read_text())
    uids = {source["uid"] for source in provisioned["datasources"]}
    dashboard = json.loads((GRAFANA / "dashboards" / "ticker.json").read_text())
    used = {target["datasource"]["uid"] for _, target in dashboard_targets()}
    assert used == uids
    assert {panel["title"] for panel in dashboard["panels"] if panel["type"] == "row"} >= {
        "Feeds",
        "Orders",
        "Fan-out (live stream)",
        "Processes and Celery",
    }


def test_the_runbooks_own_links_lead_to_its_sections() -> None:
    links = set(re.findall(r"\]\(#([^)]+)\)", RUNBOOK.read_text()))
    assert links - runbook_anchors() == set()
