"""deploy/prometheus and deploy/grafana read as data: the alerts, their tests, the runbook's anchors, and
the metric names every PromQL expression uses (README "Alerts and dashboards")."""

import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.deploy.stack import ROOT

PROMETHEUS = ROOT / "deploy" / "prometheus"
RULES = PROMETHEUS / "rules.yml"
RULES_TEST = PROMETHEUS / "rules_test.yml"
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARDS = GRAFANA / "dashboards"
RUNBOOK = ROOT / "docs" / "runbook.md"
PROMTOOL = "/usr/bin/promtool"
PROMETHEUS_BINARY = "/usr/bin/prometheus"

# What PromQL writes around metric names: strings, label matchers, ranges, grouping label lists.
_STRINGS = re.compile(r"\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'")
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
# A name not inside a number (2e9) and not a function call (rate(...)).
_NAME = re.compile(r"(?<![\w.:$])([a-zA-Z_:][\w:]*)(?![\w:]|\s*\()")
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan", "by", "without", "on", "ignoring"}
_TEMPLATE_QUERY = re.compile(r"query\s+\"([^\"]+)\"")


def rule_groups() -> list[dict[str, Any]]:
    return yaml.safe_load(RULES.read_text())["groups"]


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in rule_groups() for rule in group["rules"] if "alert" in rule]


def promql_metric_names(expression: str) -> set[str]:
    """The series names an expression selects (``foo_bucket``, not the family ``foo``)."""
    stripped = _STRINGS.sub(" ", expression)
    for pattern in (_MATCHERS, _RANGES, _GROUPING):
        stripped = pattern.sub(" ", stripped)
    return {name for name in _NAME.findall(stripped) if name.lower() not in _KEYWORDS}


def rule_expressions() -> Iterator[str]:
    """Every rule's expression and the queries its annotation templates run."""
    for group in rule_groups():
        for rule in group["rules"]:
            yield rule["expr"]
            for text in rule.get("annotations", {}).values():
                yield from _TEMPLATE_QUERY.findall(text)


def rule_metric_names() -> set[str]:
    return set().union(*(promql_metric_names(expression) for expression in rule_expressions()))


def dashboard_targets() -> Iterator[tuple[str, dict[str, Any]]]:
    """(dashboard file, target) for every panel target of every provisioned dashboard."""
    for path in sorted(DASHBOARDS.glob("*.json")):
        for panel in _panels(json.loads(path.read_text())["panels"]):
            for target in panel.get("targets", []):
                yield path.name, target


def _panels(panels: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))  # a collapsed row holds its panels


def dashboard_metric_names() -> set[str]:
    return set().union(*(promql_metric_names(target["expr"]) for _, target in dashboard_targets()))


def tested_alerts() -> tuple[set[str], set[str]]:
    """The alerts rules_test.yml evaluates expecting silence, and those it expects firing."""
    quiet, firing = set(), set()
    for case in yaml.safe_load(RULES_TEST.read_text())["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    return quiet, firing


def runbook_anchors() -> set[str]:
    """GitHub's anchors of the runbook's headings: lower case, punctuation dropped, spaces to dashes."""
    headings = re.findall(r"^#{1,6}\s+(.+?)\s*$", RUNBOOK.read_text(), flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


def exposed_series_names(families: Iterable[tuple[str, str]]) -> set[str]:
    """The series names a scrape can carry for (family, type) pairs as prometheus_client reports them
    (a counter's family name without ``_total``)."""
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "summary": ("", "_sum", "_count", "_created"),
        "info": ("_info",),
    }
    return {f"{name}{suffix}" for name, kind in families for suffix in suffixes.get(kind, ("",))}


def exposition_families(text: str) -> set[tuple[str, str]]:
    return {(family.name, family.type) for family in text_string_to_metric_families(text)}


def prometheus_config(*, web: str, flower: str, token_file: Path, password_file: Path) -> dict[str, Any]:
    """deploy/prometheus/prometheus.yml with this machine's targets and secret files, rules by absolute
    path; every other line as shipped."""
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    config["rule_files"] = [str(PROMETHEUS / name) for name in config["rule_files"]]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    jobs["ticker-web"]["static_configs"] = [{"targets": [web]}]
    jobs["ticker-web"]["authorization"]["credentials_file"] = str(token_file)
    jobs["ticker-flower"]["static_configs"] = [{"targets": [flower]}]
    jobs["ticker-flower"]["basic_auth"]["password_file"] = str(password_file)
    return config
