"""The Grafana dashboard: every panel queries the provisioned Prometheus datasource with PromQL
over metrics the services export (tests/deploy/test_prometheus.py evaluates each query)."""

import yaml

from tests.fixtures.monitoring import (
    DASHBOARD,
    DASHBOARDS_DIR,
    GRAFANA_DIR,
    PENDING_METRICS,
    PROMETHEUS_SERIES,
    dashboard,
    exported_metric_names,
    metric_names,
    panels,
    targets,
)

DASHBOARDS_CONTAINER_PATH = "/etc/grafana/dashboards"  # docker-compose.yml mounts the directory there
def test_the_exported_names_are_read_right() -> None:
    names = exported_metric_names()
    assert {"stageline_stager_dead_lettered_total", "stageline_http_request_duration_seconds_bucket",
            "stageline_stager_consumer_lag", "process_cpu_seconds_total"} <= names
    assert "stageline_stager_dead_lettered" not in names


def test_every_panel_has_a_datasource_and_a_promql_target() -> None:
    board = dashboard()
    uid = provisioned_datasource_uid()
    found = list(panels(board))
    assert len(found) >= 15, [p["title"] for p in found]
    for panel in found:
        assert panel["datasource"] == {"type": "prometheus", "uid": uid}, panel["title"]
        assert panel.get("targets"), f"{panel['title']}: no query"
        for target in panel["targets"]:
            assert target.get("expr", "").strip(), f"{panel['title']}: {target.get('refId')} has no expr"
            assert target.get("datasource") in (None, panel["datasource"]), panel["title"]
            assert target.get("refId"), panel["title"]
        assert len({t["refId"] for t in panel["targets"]}) == len(panel["targets"]), panel["title"]


def test_every_metric_the_dashboard_uses_is_exported() -> None:
    known = exported_metric_names() | PROMETHEUS_SERIES | PENDING_METRICS.keys()
    unknown = {f"{target.panel} {target.ref_id}: {name}" for target in targets(dashboard())
               for name in metric_names(target.expr) - known}
    assert not unknown, f"not exported by any service: {sorted(unknown)}"


def test_the_dashboard_covers_what_ops_watch() -> None:
    """Issue 19 §6: ingest accepted/rejected/503 and latency, stager applied, lag in records and
    seconds, batch duration, dead letters, retries, API latency and errors."""
    used = {name for target in targets(dashboard()) for name in metric_names(target.expr)}
    exprs = " ".join(target.expr for target in targets(dashboard()))
    assert {"stageline_ingest_events_accepted_total", "stageline_ingest_events_rejected_total",
            "stageline_stager_events_applied_total", "stageline_stager_consumer_lag",
            "stageline_stager_lag_seconds", "stageline_stager_batch_duration_seconds_bucket",
            "stageline_stager_dead_lettered_total", "stageline_stager_db_retries_total",
            "stageline_http_request_duration_seconds_bucket"} <= used
    for fragment in ('service="ingest", route=~"/v1/.+", status="503"', 'service="api"'):
        assert fragment in exprs


def test_panels_do_not_overlap_and_ids_are_unique() -> None:
    board = dashboard()
    every = board["panels"]
    assert len({p["id"] for p in every}) == len(every)
    taken: set[tuple[int, int]] = set()
    for panel in every:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        cells = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"])
                 for y in range(pos["y"], pos["y"] + pos["h"])}
        assert not cells & taken, f"{panel['title']} overlaps another panel"
        taken |= cells


def test_the_provider_loads_the_dashboards_directory() -> None:
    """The provider's path is where docker-compose mounts deploy/grafana/dashboards (checked by
    tests/deploy/test_compose.py), and the dashboard has a stable uid for links."""
    provider = yaml.safe_load((GRAFANA_DIR / "provisioning" / "dashboards" / "stageline.yml").read_text())
    [entry] = provider["providers"]
    assert entry["type"] == "file"
    assert entry["options"]["path"] == DASHBOARDS_CONTAINER_PATH
    assert DASHBOARD.parent == DASHBOARDS_DIR
    assert dashboard()["uid"] == "stageline"


def provisioned_datasource_uid() -> str:
    document = yaml.safe_load((GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml").read_text())
    [source] = [d for d in document["datasources"] if d["type"] == "prometheus"]
    return str(source["uid"])
