"""Debian's HAProxy on loopback in front of real servers, started from a configuration string.

    proxy = HAProxy(config_text, workdir, ports=[front_port], env={"TABLEFORGE_LB_BIND": ...})
    proxy.start()            # checks the file (haproxy -c), starts, waits until every port listens
    proxy.server_states()    # {("tableforge", "tf1"): "UP", ...} through the admin socket
    proxy.wait_state("tableforge", "tf1", "DOWN")
    proxy.reload(new_text)   # master-worker reload (SIGUSR2): old sockets finish on the old worker
    proxy.stop()

HAProxy runs in the foreground, master-worker mode (-W -db), as the test's user: the configuration must
not chroot or switch user (the shipped deploy/haproxy/haproxy.cfg does neither). The admin socket is
added by this class (`stats socket` in a `global` section of its own file, loaded after the caller's),
so callers need not write one. With CI=true a missing haproxy fails (run .ci/haproxy-deps); otherwise
the test using it skips.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

from tests.support.services import IN_CI
from tests.support.waiting import poll_until


def require_haproxy() -> str:
    """The haproxy binary, or a failure under CI / a skip elsewhere."""
    found = shutil.which("haproxy") or ("/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None)
    if found is None:
        message = "haproxy is not installed (run .ci/haproxy-deps)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return found


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


class HAProxy:
    def __init__(self, config: str, workdir: Path, ports: Iterable[int],
                 env: Mapping[str, str] | None = None) -> None:
        self.binary = require_haproxy()
        self.config = config
        self.workdir = workdir
        self.ports = list(ports)
        self.env = dict(env or {})
        self.config_path = workdir / "haproxy.cfg"
        # UNIX sockets in a short directory of their own: a path over ~97 bytes (107 less the suffix of
        # the temporary name HAProxy binds first) fails, and pytest's tmp paths can be longer (xdist
        # workers add a level). Callers put the configuration's own sockets here too; `stop` removes it.
        self.socket_dir = Path(tempfile.mkdtemp(prefix="tf"))
        self.admin_path = self.socket_dir / "admin.sock"
        self.log_path = workdir / "haproxy.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def _write(self, config: str) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(config)
        # A second file: its `global` section adds to the caller's (HAProxy merges them).
        admin = f'global\n    stats socket "{self.admin_path}" mode 600 level admin\n'
        (self.workdir / "zz-admin.cfg").write_text(admin)

    def _command(self) -> list[str]:
        return [self.binary, "-f", str(self.config_path), "-f", str(self.workdir / "zz-admin.cfg")]

    def _environ(self) -> dict[str, str]:
        return {**os.environ, **self.env}

    def check(self) -> None:
        """`haproxy -c`: fail with HAProxy's own words when the configuration is invalid."""
        done = subprocess.run([*self._command(), "-c"], env=self._environ(), capture_output=True, text=True,
                              timeout=30, check=False)
        if done.returncode != 0:
            raise AssertionError(f"haproxy -c rejected the configuration:\n{done.stdout}\n{done.stderr}")

    def start(self, timeout: float = 30.0) -> HAProxy:
        self._write(self.config)
        self.check()
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen([*self._command(), "-W", "-db"], env=self._environ(), stdout=log,
                                     stderr=subprocess.STDOUT)
        log.close()  # the child holds its own descriptor
        proc = self.proc

        def up() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"haproxy exited with {proc.returncode}:\n{self.log()}")
            return all(_listening(port) for port in self.ports) and self.admin_path.exists()

        try:
            poll_until(up, timeout, f"haproxy to listen on {self.ports}", poll=0.05)
        except AssertionError:
            self.stop()
            raise
        return self

    def reload(self, config: str | None = None, timeout: float = 30.0) -> None:
        """Replace the configuration and reload (the master starts a new worker; the old one keeps
        its established connections until they end or `hard-stop-after`)."""
        assert self.proc is not None and self.proc.poll() is None, "haproxy is not running"
        if config is not None:
            self.config = config
        self._write(self.config)
        self.check()
        before = self._worker_pids()
        self.proc.send_signal(signal.SIGUSR2)
        poll_until(lambda: bool(self._worker_pids() - before) and self.admin_path.exists(), timeout,
                   "haproxy's new worker after the reload", poll=0.05)

    def _worker_pids(self) -> set[int]:
        assert self.proc is not None
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        try:
            return {int(pid) for pid in children.read_text().split()}
        except OSError:
            return set()

    def runtime(self, command: str) -> str:
        """One command on the admin socket (`show stat`, `disable server b/s`, ...); its answer."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect(str(self.admin_path))
            s.sendall(command.encode() + b"\n")
            chunks = []
            while data := s.recv(65536):
                chunks.append(data)
        return b"".join(chunks).decode()

    def server_states(self) -> dict[tuple[str, str], str]:
        """(backend, server) -> status as HAProxy reports it: UP, DOWN, MAINT, DRAIN, "UP 1/3"..."""
        lines = self.runtime("show stat").splitlines()
        header = lines[0].lstrip("# ").split(",")
        pxname, svname, status = header.index("pxname"), header.index("svname"), header.index("status")
        states = {}
        for line in lines[1:]:
            fields = line.split(",")
            if len(fields) > status and fields[svname] not in ("FRONTEND", "BACKEND"):
                states[(fields[pxname], fields[svname])] = fields[status]
        return states

    def wait_state(self, backend: str, server: str, state: str, timeout: float = 30.0) -> None:
        """Until HAProxy's health checks report `state` (exactly, e.g. "UP" or "DOWN") for a server."""
        poll_until(lambda: self.server_states().get((backend, server)) == state, timeout,
                   f"haproxy to see {backend}/{server} {state}", poll=0.1)

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # hard stop: a test's open sockets must not hold it
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        shutil.rmtree(self.socket_dir, ignore_errors=True)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-5000:]
        except OSError:
            return ""


def self_signed_pem(workdir: Path, address: str = "127.0.0.1") -> tuple[Path, Path]:
    """A throwaway certificate for an IP `address` made with the openssl command: (the PEM HAProxy loads, the
    certificate alone, for a client's trust store)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        message = "the openssl command is not installed (run .ci/haproxy-deps)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    workdir.mkdir(parents=True, exist_ok=True)
    key, cert, pem = workdir / "tls.key", workdir / "tls.crt", workdir / "tls.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={address}",
                    "-addext", f"subjectAltName=IP:{address},DNS:localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    pem.write_bytes(cert.read_bytes() + key.read_bytes())
    return pem, cert
