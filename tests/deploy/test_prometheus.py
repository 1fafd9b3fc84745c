"""The Prometheus files of the deployment, checked by Debian's promtool: the alert rules are valid
(`promtool check rules`) and do what their unit tests say (`promtool test rules alerts.test.yml`),
and the compose stack's prometheus.yml is a valid configuration with those rules.
With CI=true a missing promtool fails (run .ci/haproxy-deps); otherwise these tests skip."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.services import IN_CI

PROMETHEUS = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"


def promtool(*args: str, cwd: Path = PROMETHEUS) -> str:
    binary = shutil.which("promtool")
    if binary is None:
        message = "promtool is not installed (Debian's prometheus package; run .ci/haproxy-deps)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    done = subprocess.run([binary, *args], cwd=cwd, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, f"promtool {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def test_the_rules_are_valid() -> None:
    out = promtool("check", "rules", "alerts.yml")
    assert "SUCCESS: 25 rules found" in out


def test_the_alerts_fire_as_their_unit_tests_say() -> None:
    out = promtool("test", "rules", "alerts.test.yml")
    assert "SUCCESS" in out


def test_the_compose_prometheus_configuration_is_valid(tmp_path: Path) -> None:
    # The file names its rules where compose mounts them; here they sit beside it.
    config = (PROMETHEUS / "prometheus.yml").read_text()
    assert "/etc/prometheus/alerts.yml" in config
    (tmp_path / "prometheus.yml").write_text(config.replace("/etc/prometheus/alerts.yml", "alerts.yml"))
    shutil.copy(PROMETHEUS / "alerts.yml", tmp_path / "alerts.yml")
    out = promtool("check", "config", "prometheus.yml", cwd=tmp_path)
    assert "SUCCESS: 25 rules found" in out
