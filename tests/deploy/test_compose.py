"""docker-compose.yml and the Prometheus config must validate with the real tools."""

import functools
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.monitoring import DASHBOARDS_DIR, GRAFANA_DIR, PROMETHEUS_CONFIG, ROOT

COMPOSE_FILE = ROOT / "docker-compose.yml"

EXPECTED_SERVICES = {"kafka", "postgres", "migrate", "ingest", "stager", "api", "prometheus", "grafana"}
APP_SERVICES = ("ingest", "stager", "api")


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as a mapping, whether compose printed a mapping or a list."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(key): "" if value is None else str(value) for key, value in env.items()}


@functools.cache
def rendered_config(docker_compose: str) -> dict[str, Any]:
    """`docker-compose config` output, parsed (run once per session)."""
    result = subprocess.run(
        [docker_compose, "-f", str(COMPOSE_FILE), "config"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, f"docker-compose config failed:\n{result.stderr}"
    config = yaml.safe_load(result.stdout)
    assert isinstance(config, dict), result.stdout
    return config


def compose_config() -> dict[str, Any]:
    """Fail (not skip) without docker-compose: `make system-deps` installs it."""
    docker_compose = shutil.which("docker-compose")
    if docker_compose is None:
        pytest.fail("docker-compose is not on PATH; run `make system-deps` to install it")
    return rendered_config(docker_compose)


def test_compose_config_has_all_services() -> None:
    services = compose_config().get("services") or {}
    missing = EXPECTED_SERVICES - set(services)
    assert not missing, f"services missing from docker-compose.yml: {sorted(missing)}"


def test_app_services_get_broker_and_database() -> None:
    services = compose_config()["services"]
    for name in APP_SERVICES:
        env = environment(services[name])
        assert env.get("KAFKA_BOOTSTRAP_SERVERS"), f"{name} has no KAFKA_BOOTSTRAP_SERVERS"
        assert env.get("DATABASE_URL", "").startswith("postgresql://"), f"{name} has no DATABASE_URL"
        assert env.get(f"STAGELINE_{name.upper()}_HOST") == "0.0.0.0", f"{name} must bind 0.0.0.0"


def test_app_services_wait_for_migrations() -> None:
    services = compose_config()["services"]
    for name in APP_SERVICES:
        depends_on = services[name].get("depends_on") or {}
        assert isinstance(depends_on, dict), f"{name}: depends_on needs conditions"
        assert depends_on.get("migrate", {}).get("condition") == "service_completed_successfully", name


def test_prometheus_config_is_valid() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not on PATH; run `make system-deps` to install it (Debian's prometheus)")
    result = subprocess.run(
        [promtool, "check", "config", str(PROMETHEUS_CONFIG.relative_to(ROOT))],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, f"promtool check config failed:\n{result.stdout}{result.stderr}"


def bind_mounts(service: dict[str, Any]) -> dict[str, Path]:
    """A service's bind mounts, container path -> host path, in compose's short or long form."""
    mounts: dict[str, Path] = {}
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            if volume.get("type") == "bind":
                mounts[volume["target"]] = Path(volume["source"])
            continue
        source, target, *_ = str(volume).split(":")
        if source.startswith(("/", ".")):  # not a named volume
            mounts[target] = (ROOT / source).resolve()
    return mounts


def test_prometheus_gets_its_config_and_every_rule_file() -> None:
    mounts = bind_mounts(compose_config()["services"]["prometheus"])
    assert mounts["/etc/prometheus/prometheus.yml"] == PROMETHEUS_CONFIG
    for rule_file in yaml.safe_load(PROMETHEUS_CONFIG.read_text())["rule_files"]:
        # prometheus.yml names its rule files relative to itself.
        assert mounts.get(f"/etc/prometheus/{rule_file}") == PROMETHEUS_CONFIG.parent / rule_file, rule_file


def test_grafana_gets_its_provisioning_and_the_dashboards() -> None:
    mounts = bind_mounts(compose_config()["services"]["grafana"])
    assert mounts["/etc/grafana/provisioning"] == GRAFANA_DIR / "provisioning"
    provider = yaml.safe_load((GRAFANA_DIR / "provisioning" / "dashboards" / "stageline.yml").read_text())
    [entry] = provider["providers"]
    assert mounts[entry["options"]["path"]] == DASHBOARDS_DIR
    assert list(DASHBOARDS_DIR.glob("*.json")), "no dashboard to provision"
