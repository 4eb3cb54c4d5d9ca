"""The alert rules: valid for promtool, each alert shown firing by alerts_test.yml, each one over
exported metrics, labelled, annotated and documented in the README."""

import re
import subprocess

import pytest
import yaml

from tests.fixtures.monitoring import (
    ALERTS,
    ALERTS_TEST,
    PENDING_METRICS,
    PROMETHEUS_CONFIG,
    PROMETHEUS_SERIES,
    ROOT,
    alert_rules,
    exported_metric_names,
    metric_names,
    tool,
)


def promtool(*args: str) -> None:
    result = subprocess.run([tool("promtool"), *args], cwd=ROOT, capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, f"promtool {' '.join(args)} failed:\n{result.stdout}{result.stderr}"


def test_promtool_checks_the_rules() -> None:
    promtool("check", "rules", str(ALERTS.relative_to(ROOT)))


def test_promtool_unit_tests_pass() -> None:
    promtool("test", "rules", str(ALERTS_TEST.relative_to(ROOT)))


def test_prometheus_loads_the_rules() -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    assert config["rule_files"] == [ALERTS.name]  # beside prometheus.yml, as docker-compose mounts it


def test_every_alert_is_shown_firing_and_tested() -> None:
    document = yaml.safe_load(ALERTS_TEST.read_text())
    assert document["rule_files"] == [ALERTS.name], "the tests must load the production file itself"
    firing = {case["alertname"] for test in document["tests"] for case in test["alert_rule_test"]
              if case.get("exp_alerts")}
    quiet = {case["alertname"] for test in document["tests"] for case in test["alert_rule_test"]
             if not case.get("exp_alerts")}
    names = {rule["alert"] for rule in alert_rules()}
    assert names - firing == set(), "alerts no test shows firing"
    assert names - quiet == set(), "alerts no test shows staying quiet"


def test_alerts_are_labelled_and_annotated() -> None:
    rules = alert_rules()
    assert len({rule["alert"] for rule in rules}) == len(rules), "alert names repeat"
    for rule in rules:
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"].get("summary"), rule["alert"]
        assert rule["annotations"].get("description"), rule["alert"]


def test_alerts_use_exported_metrics() -> None:
    known = exported_metric_names() | PROMETHEUS_SERIES | PENDING_METRICS.keys()
    unknown = {f"{rule['alert']}: {name}" for rule in alert_rules()
               for name in metric_names(rule["expr"]) - known}
    assert not unknown, f"not exported by any service: {sorted(unknown)}"


def test_issue_19_faults_have_alerts() -> None:
    """A stager down or not consuming, lag growing or over N seconds, dead letters, ingest
    5xx/503, the database unreachable."""
    assert {"StagerDown", "NoStagerRunning", "StagerNotConsuming", "StagerLagGrowing",
            "StagerLagHigh", "DeadLettersAppearing", "IngestUnavailable", "IngestServerErrors",
            "DatabaseUnreachable"} <= {rule["alert"] for rule in alert_rules()}


def test_the_readme_documents_every_alert() -> None:
    readme = (ROOT / "README.md").read_text()
    section = re.split(r"\n##+ ", readme.split("\n### Alerts\n", 1)[1], maxsplit=1)[0]
    documented = set(re.findall(r"^\| `(\w+)` \|", section, flags=re.MULTILINE))
    assert documented == {rule["alert"] for rule in alert_rules()}
    for rule in alert_rules():
        row = next(line for line in section.splitlines() if line.startswith(f"| `{rule['alert']}` |"))
        expected = rule.get("for", "—")
        assert f"| {expected} |" in row, f"README's `for` of {rule['alert']} is not {expected}"


@pytest.mark.parametrize(("expr", "names"), [
    ('sum by (reason) (rate(stageline_x_total{job="a", route=~"/v1/.+"}[5m]))', {"stageline_x_total"}),
    ("histogram_quantile(0.99, sum by (le) (rate(a_bucket[$__rate_interval])))", {"a_bucket"}),
    ("a unless on (job, instance) b offset 10m or time() - c < 600", {"a", "b", "c"}),
    ('absent(up{job="x"} == 1) or vector(0) and bool 1e3', {"up"}),
])
def test_metric_names_reads_selectors_only(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names
