"""The container and systemd recipes, checked as far as this machine can without a Docker engine.

- compose.yaml: parsed and rendered offline by Debian's docker-compose 1.29 (it predates the top-level
  `name:` of Compose v2, which is taken out first), then the rendered stack is read: what the
  services are, what they share, that the balancer's settings are the ones haproxy.cfg reads, and
  `haproxy -c` with them; the first-start certificate script run for real.
- Dockerfile: read as text (no hadolint here): stages, user, health check, the install without extras;
  its health-check command run against a real server.
- systemd units: `systemd-analyze verify`, the HAProxy drop-in on top of Debian's own haproxy.service.
With CI=true a missing docker-compose, haproxy or systemd-analyze fails (run .ci/haproxy-deps).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import free_port
from tests.support.haproxy import require_haproxy
from tests.support.server import ServerProcess
from tests.support.services import IN_CI

ROOT = Path(__file__).resolve().parents[2]
HAPROXY_CFG = ROOT / "deploy" / "haproxy" / "haproxy.cfg"
SYSTEMD = ROOT / "deploy" / "systemd"


def tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        message = f"{name} is not installed (run .ci/haproxy-deps)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return found


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """compose.yaml as docker-compose renders it (variables substituted, anchors merged)."""
    compose = tool("docker-compose")
    work = tmp_path_factory.mktemp("compose")
    text = (ROOT / "compose.yaml").read_text()
    assert re.search(r"^name: tableforge$", text, re.M)
    (work / "compose.yaml").write_text(re.sub(r"^name: .*$", "", text, flags=re.M))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TABLEFORGE_", "POSTGRES_"))}
    command = [compose, "-f", str(work / "compose.yaml"), "--project-directory", str(ROOT), "config"]
    refused = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert refused.returncode != 0 and "put POSTGRES_PASSWORD=<random> in .env" in refused.stderr
    done = subprocess.run(command, env={**env, "POSTGRES_PASSWORD": "pw-for-the-test"}, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    rendered: dict[str, Any] = yaml.safe_load(done.stdout)
    return rendered


def test_compose_runs_three_instances_migrated_once_behind_haproxy(stack: dict[str, Any]) -> None:
    services = stack["services"]
    assert set(services) == {"postgres", "redis", "migrate", "tableforge-1", "tableforge-2", "tableforge-3",
                             "certs", "haproxy", "prometheus", "grafana", "backup"}
    instances = [services[f"tableforge-{i}"] for i in (1, 2, 3)]
    assert [s["environment"]["TABLEFORGE_INSTANCE_ID"] for s in instances] == [f"tableforge-{i}" for i in (1, 2, 3)]
    for s in instances:
        env = s["environment"]
        assert env["TABLEFORGE_DATABASE_URL"] == "postgresql://tableforge:pw-for-the-test@postgres:5432/tableforge"
        assert env["TABLEFORGE_REDIS_URL"] == "redis://redis:6379/0" and env["TABLEFORGE_AUTO_MIGRATE"] == "false"
        assert s["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert s["volumes"] == ["data:/var/lib/tableforge:rw"]  # the assets, shared
        assert "ports" not in s  # reached through the balancer only
        assert s["image"] == "tableforge:latest" and s["build"]["context"] == str(ROOT)
    assert services["migrate"]["command"] == ["migrate"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    # The instances believe forwarded headers from the balancer's fixed address, and only from it.
    lb_address = services["haproxy"]["networks"]["backend"]["ipv4_address"]
    assert {s["environment"]["TABLEFORGE_TRUSTED_PROXIES"] for s in instances} == {lb_address}
    assert stack["networks"]["backend"]["ipam"]["config"][0]["subnet"] == "172.30.77.0/24"
    assert set(stack["volumes"]) == {"db", "data", "certs", "backups", "prometheus", "grafana"}
    assert "db:/var/lib/postgresql/data:rw" in services["postgres"]["volumes"]
    # Prometheus and Grafana answer on this machine only.
    for name, port in (("prometheus", 9090), ("grafana", 3000)):
        long_form = {"host_ip": "127.0.0.1", "published": port, "target": port}
        assert services[name]["ports"] in ([f"127.0.0.1:{port}:{port}/tcp"], [long_form])
    assert services["backup"]["profiles"] == ["tools"]
    assert services["backup"]["command"][:3] == ["backup", "--output", "/var/backups/tableforge"]


def test_the_balancer_gets_exactly_the_variables_haproxy_cfg_reads(stack: dict[str, Any], tmp_path: Path) -> None:
    haproxy = stack["services"]["haproxy"]
    read = set(re.findall(r"\$\{(LB_[A-Z0-9_]+)", HAPROXY_CFG.read_text()))
    assert set(haproxy["environment"]) == read
    assert {haproxy["environment"][f"LB_SERVER_{i}"] for i in (1, 2, 3)} == {f"tableforge-{i}:8000" for i in (1, 2, 3)}
    mounts = haproxy["volumes"]
    assert {"source": str(HAPROXY_CFG), "target": "/usr/local/etc/haproxy/haproxy.cfg", "read_only": True,
            "type": "bind"} in mounts or f"{HAPROXY_CFG}:/usr/local/etc/haproxy/haproxy.cfg:ro" in mounts
    # The scrape targets are the instances.
    prometheus = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    job = next(j for j in prometheus["scrape_configs"] if j["job_name"] == "tableforge")
    assert job["static_configs"][0]["targets"] == [haproxy["environment"][f"LB_SERVER_{i}"] for i in (1, 2, 3)]

    # The compose values, with the certificate the certs service makes: HAProxy accepts them (the
    # instance names do not resolve here: init-addr lets it start and resolve them later).
    pem = _run_cert_script(stack, tmp_path)
    env = {**haproxy["environment"], "LB_CERT": str(pem), "LB_ADMIN_SOCKET": str(tmp_path / "admin.sock")}
    done = subprocess.run([require_haproxy(), "-c", "-f", str(HAPROXY_CFG)], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def _run_cert_script(stack: dict[str, Any], work: Path) -> Path:
    if os.geteuid() != 0:
        pytest.skip("the certificate script changes the file's owner (it runs as root in its container)")
    tool("openssl")
    certs = stack["services"]["certs"]
    assert certs["entrypoint"] == ["/bin/sh", "-c"] and certs["user"] == "0:0"
    script = certs["command"][0].replace("$$", "$").replace("/certs/", f"{work}/")
    env = {**os.environ, **certs["environment"]}
    first = subprocess.run(["/bin/sh", "-c", script], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert first.returncode == 0, first.stderr
    assert "made a self-signed certificate for localhost" in first.stdout
    pem = work / "tableforge.pem"
    made = pem.read_text()
    assert "BEGIN CERTIFICATE" in made and "PRIVATE KEY" in made
    assert (pem.stat().st_uid, pem.stat().st_mode & 0o777) == (99, 0o600)
    # A certificate already there (a real one, or the first start's) is kept.
    again = subprocess.run(["/bin/sh", "-c", script], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert again.returncode == 0 and "made" not in again.stdout and pem.read_text() == made
    return pem


def test_the_image_is_multi_stage_non_root_small_and_checks_ready() -> None:
    text = (ROOT / "Dockerfile").read_text()
    lines = [line.strip() for line in re.sub(r"\\\n", " ", text).splitlines() if line.strip()
             and not line.lstrip().startswith("#")]
    froms = [line for line in lines if line.startswith("FROM ")]
    assert froms == ["FROM ${PYTHON_IMAGE} AS build", "FROM ${PYTHON_IMAGE}"]
    runtime = lines[lines.index("FROM ${PYTHON_IMAGE}"):]
    assert "COPY --from=build /opt/tableforge /opt/tableforge" in runtime
    users = [line for line in runtime if line.startswith("USER ")]
    assert users == ["USER tableforge:tableforge"]
    assert runtime.index(users[0]) < runtime.index(next(line for line in runtime if line.startswith("CMD ")))
    install = next(line for line in lines if "pip install" in line)
    assert "/opt/tableforge/bin/pip install ." in install and "[" not in install  # no loadtest extra
    assert 'ENTRYPOINT ["tableforge"]' in runtime
    assert 'CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]' in runtime and "EXPOSE 8000" in runtime
    assert any(line.startswith("HEALTHCHECK") and "http://127.0.0.1:8000/ready" in line for line in runtime)
    ignored = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if not line.startswith("#")]
    assert ignored[:5] == ["*", "!pyproject.toml", "!README.md", "!LICENSE", "!src/"]


def test_the_image_health_check_command_follows_ready(tmp_path: Path) -> None:
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    command = re.search(r'HEALTHCHECK .*CMD \["python", "-c", "(.*)"\]', text)
    assert command is not None
    port = free_port()
    code = command.group(1).replace("127.0.0.1:8000", f"127.0.0.1:{port}")
    server = ServerProcess(port, {"TABLEFORGE_DATA_DIR": str(tmp_path / "data")}, name="healthcheck")
    server.start()
    try:
        up = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30, check=False)
        assert up.returncode == 0, up.stderr
    finally:
        server.stop()
    down = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30, check=False)
    assert down.returncode == 1


def _verify(unit_dir: Path, unit: str) -> None:
    done = subprocess.run([tool("systemd-analyze"), "verify", "--man=no", f"./{unit}"], cwd=unit_dir,
                          capture_output=True, text=True, timeout=60, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 0 and "Unknown" not in output and "ignoring" not in output, output


def test_the_systemd_units_verify(tmp_path: Path) -> None:
    # The executables and the environment file where this test can provide them; the rest as shipped.
    tableforge = Path(sys.executable).with_name("tableforge")
    assert tableforge.exists()
    (tmp_path / "tableforge.env").write_text((SYSTEMD / "tableforge.env").read_text())
    for name in ("tableforge@.service", "tableforge-backup.service", "tableforge-backup.timer"):
        text = (SYSTEMD / name).read_text()
        text = text.replace("/opt/tableforge/bin/tableforge", str(tableforge))
        text = text.replace("/etc/tableforge/tableforge.env", str(tmp_path / "tableforge.env"))
        text = text.replace("User=tableforge", "User=root").replace("Group=tableforge", "Group=root")
        (tmp_path / name).write_text(text)
    _verify(tmp_path, "tableforge@8001.service")
    _verify(tmp_path, "tableforge-backup.timer")
    unit = (SYSTEMD / "tableforge@.service").read_text()
    assert "ExecStartPre=/opt/tableforge/bin/tableforge migrate\n" in unit
    assert "ExecStart=/opt/tableforge/bin/tableforge serve --host 127.0.0.1 --port %i\n" in unit
    assert "EnvironmentFile=/etc/tableforge/tableforge.env\n" in unit and "NoNewPrivileges=yes\n" in unit
    env = dict(line.split("=", 1) for line in (SYSTEMD / "tableforge.env").read_text().splitlines()
               if line and not line.startswith("#"))
    assert env["TABLEFORGE_TRUSTED_PROXIES"] == "127.0.0.1" and env["TABLEFORGE_AUTO_MIGRATE"] == "false"
    # The balancer's defaults are these instances.
    assert {f"127.0.0.1:{port}" for port in (8001, 8002, 8003)} == set(
        re.findall(r'"\$\{LB_SERVER_\d-([^}]+)\}"', HAPROXY_CFG.read_text()))


def test_the_haproxy_drop_in_verifies_on_debians_unit(tmp_path: Path) -> None:
    debian = Path("/lib/systemd/system/haproxy.service")
    if not debian.exists():
        message = "Debian's haproxy package is not installed (run .ci/haproxy-deps)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    shutil.copy(debian, tmp_path / "haproxy.service")
    (tmp_path / "haproxy.service.d").mkdir()
    shutil.copy(SYSTEMD / "haproxy.service.d" / "tableforge.conf", tmp_path / "haproxy.service.d" / "tableforge.conf")
    _verify(tmp_path, "haproxy.service")
