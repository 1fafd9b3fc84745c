"""The shipped room-affinity configuration: HAProxy accepts it, and it is the default recipe but for
its backend (so a fix to the default's TLS, timeouts or limits cannot be forgotten in the variant)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.balancing.support import LEASTCONN, ROOMS, sections
from tests.support.haproxy import require_haproxy


def _self_signed(tmp_path: Path) -> Path:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=localhost", "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True,
                   timeout=60)
    pem = tmp_path / "tableforge.pem"
    pem.write_bytes(cert.read_bytes() + key.read_bytes())
    return pem


def test_haproxy_accepts_the_room_affinity_configuration(tmp_path: Path) -> None:
    binary = require_haproxy()
    env = {"PATH": "/usr/sbin:/usr/bin:/bin", "LB_CERT": str(_self_signed(tmp_path)),
           "LB_ADMIN_SOCKET": str(tmp_path / "admin.sock")}
    done = subprocess.run([binary, "-c", "-f", str(ROOMS)], env=env, capture_output=True, text=True, timeout=30,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    backend = dict(sections(ROOMS.read_text()))["backend tableforge"]
    directives = [line.split("#")[0].strip() for line in backend.splitlines()]
    assert "balance url_param room" in directives and "hash-type consistent" in directives


def test_the_variant_differs_from_the_default_only_in_its_backend() -> None:
    if not LEASTCONN.exists():
        pytest.skip("deploy/haproxy/haproxy.cfg comes with the deploy branch")
    default = [(h, b) for h, b in sections(LEASTCONN.read_text()) if h != "backend tableforge"]
    variant = [(h, b) for h, b in sections(ROOMS.read_text()) if h != "backend tableforge"]
    assert [h for h, _ in variant] == [h for h, _ in default]
    for (header, theirs), (_, ours) in zip(default, variant, strict=True):
        assert ours == theirs, f"section {header!r} of haproxy-rooms.cfg no longer matches haproxy.cfg"
