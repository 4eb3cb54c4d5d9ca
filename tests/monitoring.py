"""The monitoring files under deploy/ as the tests read them: the dashboard's queries, the alert
rules, the metric names a PromQL expression uses, and the Prometheus tools from Debian."""

import json
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

import stageline_ingest.metrics
import stageline_shared.http_metrics
import stageline_stager.metrics

ROOT = Path(__file__).resolve().parents[1]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
ALERTS_TEST = PROMETHEUS_DIR / "alerts_test.yml"
GRAFANA_DIR = ROOT / "deploy" / "grafana"
DASHBOARDS_DIR = GRAFANA_DIR / "dashboards"
DASHBOARD = DASHBOARDS_DIR / "stageline.json"

# What Grafana puts in place of its variables; any duration works for the expression's validity.
GRAFANA_VARIABLES = {"$__rate_interval": "15s", "$__interval": "5s", "$__range": "5m"}

# Series Prometheus makes itself, not the services.
PROMETHEUS_SERIES = frozenset({"up", "ALERTS", "ALERTS_FOR_STATE", "scrape_duration_seconds",
                               "scrape_samples_scraped"})

# Metrics the dashboard and the alerts use before the service exports them, each with who adds it.
# An entry here is allowed to be missing; drop it once the metric is served.
PENDING_METRICS: dict[str, str] = {}
# Imported for what they register in prometheus_client's REGISTRY: every metric a service serves.
_METRICS_MODULES = (stageline_ingest.metrics, stageline_stager.metrics, stageline_shared.http_metrics)
_SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created"),
             "summary": ("_count", "_sum", "_created"), "gauge": ("",), "info": ("_info",)}


def exported_metric_names() -> set[str]:
    """Every series name the three services can serve: their metrics modules' families (with
    each type's suffixes) and prometheus_client's process and Python collectors."""
    return {family.name + suffix for family in REGISTRY.collect()
            for suffix in _SUFFIXES.get(family.type, ("",))}


def tool(name: str) -> str:
    """A Prometheus tool on PATH; fail (not skip) without it: `make system-deps` installs it."""
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not on PATH; run `make system-deps` (Debian's prometheus package)")
    return found


@dataclass(frozen=True)
class Target:
    """One query of a dashboard panel."""

    panel: str
    ref_id: str
    expr: str
    datasource: dict[str, Any] | None

    def promql(self) -> str:
        """The expression as Prometheus receives it, Grafana's variables replaced."""
        expr = self.expr
        for variable, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        return expr


def dashboard() -> dict[str, Any]:
    loaded = json.loads(DASHBOARD.read_text())
    assert isinstance(loaded, dict)
    return loaded


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel but the rows, including panels inside a collapsed row."""
    for panel in board["panels"]:
        if panel.get("type") == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def targets(board: dict[str, Any]) -> list[Target]:
    return [Target(panel["title"], target.get("refId", ""), target.get("expr", ""),
                   target.get("datasource"))
            for panel in panels(board) for target in panel.get("targets", [])]


def alert_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERTS.read_text())
    return [rule for group in document["groups"] for rule in group["rules"] if "alert" in rule]


# Removed before reading names: strings (label values, regexes), label matchers, ranges and
# offsets' durations, and the label lists of by/without/on/ignoring/group_left/group_right.
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_BRACES = re.compile(r"\{[^}]*\}")
_BRACKETS = re.compile(r"\[[^\]]*\]")
_LABEL_LIST = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_NAME = re.compile(r"(?<![A-Za-z0-9_:.])[A-Za-z_:][A-Za-z0-9_:]*")
_KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
                       "group_left", "group_right", "inf", "nan"})


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (function and aggregation names excluded)."""
    text = _STRING.sub('""', expr)
    text = _BRACES.sub(" ", text)
    text = _BRACKETS.sub(" ", text)
    text = _LABEL_LIST.sub(" ", text)
    text = re.sub(r"\boffset\s+\d+[smhdwy]", " ", text)
    names = set()
    for match in _NAME.finditer(text):
        following = text[match.end():].lstrip()[:1]
        if following == "(" or match.group().lower() in _KEYWORDS:
            continue  # a function, an aggregation, or a keyword
        names.add(match.group())
    return names
