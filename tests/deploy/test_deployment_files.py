"""deploy/: the compose file's services and the systemd units start Gofer with commands that exist and settings
Gofer reads; `docker compose config` accepts the file where the compose plugin is installed."""

from __future__ import annotations

import configparser
import ipaddress
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from django.core.management import get_commands
from django.urls import resolve

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
# The standard OpenTelemetry variables the SDK and its exporters read themselves (docs/observability.md).
OTEL_VARIABLES = {
    "OTEL_SDK_DISABLED",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_TIMEOUT",
    "OTEL_EXPORTER_OTLP_CERTIFICATE",
    "OTEL_EXPORTER_OTLP_COMPRESSION",
    "OTEL_METRIC_EXPORT_INTERVAL",
}


def variables_gofer_reads() -> set[str]:
    """Every variable name gofer_site/settings.py reads (env, envint, envbool, envlist, envrate... and fallbacks)."""
    source = (REPO / "gofer_site" / "settings.py").read_text()
    names = set(re.findall(r"\benv\w*\(\s*\"([A-Z][A-Z0-9_]+)\"", source))
    names |= set(re.findall(r"fallback=\"([A-Z][A-Z0-9_]+)\"", source))
    return names | OTEL_VARIABLES


def _assert_known(names: set[str], where: str) -> None:
    unknown = sorted(n for n in names if n not in variables_gofer_reads())
    assert not unknown, f"{where} sets variables Gofer does not read: {unknown}"


def _manage_command(argv: list[str], where: str) -> None:
    assert argv[:2] in (["python", "manage.py"], ["/opt/gofer/.venv/bin/python", "manage.py"]), where
    assert argv[2] in get_commands(), f"{where}: manage.py has no command {argv[2]!r}"


def _env_file(path: Path) -> set[str]:
    return {
        line.split("=", 1)[0].lstrip("# ").strip()
        for line in path.read_text().splitlines()
        if re.match(r"^#?\s?[A-Z][A-Z0-9_]+=", line)
    }


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def test_the_settings_scan_finds_what_it_must():
    """The check below can fail: it knows the settings' variables, and not made-up ones."""
    known = variables_gofer_reads()
    assert {"GOFER_DATABASE_URL", "GOFER_REDIS_URL", "GOFER_RATELIMIT_API", "GOFER_EXTERNAL_RATE_LIMIT"} <= known
    assert "GOFER_NO_SUCH_SETTING" not in known


def test_every_gofer_service_runs_an_existing_command_with_known_settings():
    services = compose()["services"]
    gofer = {name: s for name, s in services.items() if s.get("image") == "gofer:latest"}
    assert set(gofer) == {"migrate", "server", "worker"}
    for name, service in gofer.items():
        # Built from the repository's root (the context is relative to deploy/).
        assert service["build"]["context"] == ".."
        assert (REPO / service["build"]["dockerfile"]).exists(), name
        _manage_command(service["command"], f"service {name}")
        _assert_known(set(service["environment"]), f"service {name}")
        assert service["env_file"] == "gofer.env"
    assert gofer["server"]["command"][2] == "serve" and gofer["worker"]["command"][2] == "qcluster"
    assert gofer["server"]["deploy"]["replicas"] >= 2 and gofer["worker"]["deploy"]["replicas"] >= 2
    # Production's shape: PostgreSQL and Redis, logs and objects on storage every server and worker shares.
    for name in ("server", "worker"):
        environment = gofer[name]["environment"]
        assert environment["GOFER_DATABASE_URL"].startswith("postgres://")
        assert environment["GOFER_REDIS_URL"].startswith("redis://")
        shared = [v for v in gofer[name]["volumes"] if v.startswith("gofer-shared:")]
        assert shared == ["gofer-shared:/srv/gofer"]
        assert environment["GOFER_LOG_DIR"].startswith("/srv/gofer/")
        assert environment["GOFER_OBJECT_DIR"].startswith("/srv/gofer/")
    assert gofer["worker"]["environment"]["GOFER_SCHEDULER"] == "docker"


def test_dependencies_volumes_and_the_proxy_hold_together():
    document = compose()
    services = document["services"]
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on a service that does not exist: {dependency}"
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if not source.startswith(("/", ".")):
                assert source in document["volumes"], f"{name} mounts an undeclared volume {source}"
            elif source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name} mounts {source}, which is not in deploy/"
    caddyfile = (DEPLOY / "Caddyfile").read_text()
    assert "reverse_proxy server:8080" in caddyfile and "health_uri /readyz" in caddyfile
    assert resolve("/readyz").url_name == "readyz"
    assert services["server"]["healthcheck"]["test"][-1].endswith("/readyz')")
    _assert_known(_env_file(DEPLOY / "gofer.env.example"), "deploy/gofer.env.example")


def test_only_the_proxy_is_trusted_with_x_forwarded_for():
    """docs/deployment.md: GOFER_TRUSTED_PROXIES is exactly the proxy's addresses. A range would let any container
    in it (a worker, a task on a bridge, an extension's service) choose the client address it is counted as."""
    document = compose()
    services = document["services"]
    proxy = services["proxy"]["networks"]["default"]["ipv4_address"]
    subnets = [entry["subnet"] for entry in document["networks"]["default"]["ipam"]["config"]]
    assert any(ipaddress.ip_address(proxy) in ipaddress.ip_network(subnet) for subnet in subnets)
    for name in ("server", "worker", "migrate"):
        trusted = str(services[name]["environment"]["GOFER_TRUSTED_PROXIES"]).split(",")
        assert [ipaddress.ip_network(entry.strip()) for entry in trusted] == [ipaddress.ip_network(proxy)], name


def _compose_command() -> list[str] | None:
    """``docker compose`` (the plugin) or ``docker-compose`` (Debian's package), whichever is installed."""
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    standalone = shutil.which("docker-compose")
    return [standalone] if standalone else None


def test_the_compose_file_validates_with_docker_compose(tmp_path):
    command = _compose_command()
    if command is None:
        pytest.skip("neither docker compose nor docker-compose is installed (the YAML checks above still ran)")
    # A copy of deploy/ with the example settings as gofer.env, as an operator would make it.
    copy = tmp_path / "deploy"
    shutil.copytree(DEPLOY, copy)
    shutil.copy(DEPLOY / "gofer.env.example", copy / "gofer.env")
    result = subprocess.run(
        [*command, "-f", str(copy / "compose.yaml"), "config", "--quiet"],
        capture_output=True,
        text=True,
        env={"POSTGRES_PASSWORD": "x", "PATH": "/usr/local/bin:/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr


def _unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # systemd's keys are case-sensitive
    parser.read(DEPLOY / "systemd" / name)
    return parser


def test_the_systemd_units_start_the_migrations_the_servers_and_the_workers():
    units = {path.name for path in (DEPLOY / "systemd").iterdir()}
    assert {"gofer-migrate.service", "gofer-server@.service", "gofer-worker.service", "gofer.target"} <= units
    commands = {}
    for name in ("gofer-migrate.service", "gofer-server@.service", "gofer-worker.service"):
        service = _unit(name)["Service"]
        argv = service["ExecStart"].split()
        _manage_command(argv, name)
        commands[name] = argv[2]
        assert service["EnvironmentFile"] == "/etc/gofer/gofer.env"
        assert service["User"] == "gofer"
        extra = {line.split("=", 1)[0] for line in service.get("Environment", "").split() if "=" in line}
        _assert_known(extra, name)
    assert commands == {
        "gofer-migrate.service": "migrate",
        "gofer-server@.service": "serve",
        "gofer-worker.service": "qcluster",
    }
    for name in ("gofer-server@.service", "gofer-worker.service"):
        unit = _unit(name)["Unit"]
        assert "gofer-migrate.service" in unit["Requires"] and "gofer-migrate.service" in unit["After"]
    wanted = _unit("gofer.target")["Unit"]["Wants"].split()
    for unit_name in wanted:
        template = re.sub(r"@[^.]+\.", "@.", unit_name)
        assert template in units, f"gofer.target wants {unit_name}, which has no unit file"
