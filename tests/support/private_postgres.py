"""A PostgreSQL server of the test's own: a fresh `initdb` cluster on a free loopback port, to stop
(fast, or immediate = a crash) and restart at will without touching the shared cluster on 5432
(other tests and engineers use it). Missing binaries: a failure under CI, a skip elsewhere.

PostgreSQL refuses to run as root: as root, initdb and pg_ctl run as the `postgres` OS user, in a
directory that user owns (pytest's tmp_path lives under a 0700 root directory, so when that user
cannot reach `workdir` the cluster goes to a fresh directory under the system temp dir instead).
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.support.cluster import free_port
from tests.support.services import IN_CI

_OS_USER = "postgres"
_SOCKET_PATH_MAX = 100  # sun_path is 108 bytes; the socket file name adds ".s.PGSQL.NNNNN"

# Small and fast, never durable against a machine crash (fsync=off), but synchronous_commit stays
# on: an acked commit is in the WAL (the OS page cache) before the client hears of it, so it
# survives an immediate stop (a killed server) and this cluster's crash recovery replays it.
_CONF = """
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = '{socket_dir}'
max_connections = 60
shared_buffers = 16MB
fsync = off
full_page_writes = off
synchronous_commit = on
logging_collector = off
log_min_messages = warning
log_line_prefix = '%m [%p] '
"""


def _binaries() -> Path | None:
    """The bin directory of the newest PostgreSQL under /usr/lib/postgresql, else the one on PATH."""
    versions = []
    root = Path("/usr/lib/postgresql")
    if root.is_dir():
        for entry in root.iterdir():
            if re.fullmatch(r"\d+(\.\d+)?", entry.name) and (entry / "bin" / "initdb").exists() \
                    and (entry / "bin" / "pg_ctl").exists():
                versions.append((tuple(int(p) for p in entry.name.split(".")), entry / "bin"))
    if versions:
        return max(versions)[1]
    found = shutil.which("pg_ctl")
    if found and (Path(found).parent / "initdb").exists():
        return Path(found).parent
    return None


def _missing(message: str) -> None:
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


class PrivatePostgres:
    """`settings`: server settings for this cluster's postgresql.conf, e.g.
    `{"shared_preload_libraries": "pg_stat_statements"}` for a test that needs what the shared
    server may not be configured with (and must not be restarted for)."""

    def __init__(self, workdir: Path, port: int | None = None, settings: dict[str, str] | None = None) -> None:
        bindir = _binaries()
        if bindir is None:
            _missing("PostgreSQL server binaries (initdb, pg_ctl) are needed for this test")
        assert bindir is not None
        self.bindir = bindir
        self.as_root = os.geteuid() == 0
        if self.as_root:
            if shutil.which("runuser") is None:
                _missing("running PostgreSQL as root needs runuser (util-linux)")
            try:
                self._owner = pwd.getpwnam(_OS_USER)
            except KeyError:
                _missing(f"PostgreSQL refuses to run as root and there is no {_OS_USER!r} OS user")
        self.port = port or free_port()
        self.root = self._make_root(workdir)
        self.data = self.root / "data"
        self.socket_dir = self.root / "sock"
        self.log_path = self.root / "server.log"
        self.running = False
        self.settings = dict(settings or {})
        self._initdb()

    # -- set-up ---------------------------------------------------------------------------------

    def _make_root(self, workdir: Path) -> Path:
        """A directory the server's OS user owns and can reach, with room for the socket path."""
        root = workdir / "private-postgres"
        root.mkdir(parents=True, exist_ok=True)
        if not self.as_root:
            return root
        os.chown(root, self._owner.pw_uid, self._owner.pw_gid)
        short = len(str(root / "sock" / f".s.PGSQL.{self.port}")) <= _SOCKET_PATH_MAX
        if short and self._run_as_owner(["test", "-w", str(root)]).returncode == 0:
            return root
        root.rmdir()
        root = Path(tempfile.mkdtemp(prefix="tableforge-pg-"))  # 0700, under the world-traversable temp dir
        os.chown(root, self._owner.pw_uid, self._owner.pw_gid)
        return root

    def _command(self, args: list[str]) -> list[str]:
        return ["runuser", "-u", _OS_USER, "--", *args] if self.as_root else args

    def _run_as_owner(self, args: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self._command(args), cwd="/", capture_output=True, text=True, timeout=timeout,
                              check=False)

    def _bin(self, name: str) -> str:
        return str(self.bindir / name)

    def _initdb(self) -> None:
        self.socket_dir.mkdir()
        if self.as_root:
            os.chown(self.socket_dir, self._owner.pw_uid, self._owner.pw_gid)
        done = self._run_as_owner([self._bin("initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust",
                                   "-E", "UTF8", "--locale=C", "--no-sync"])
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        # Appended (the file stays the server user's); later settings win over initdb's.
        conf = _CONF.format(port=self.port, socket_dir=self.socket_dir)
        for name, value in self.settings.items():
            if not re.fullmatch(r"[a-z_][a-z0-9_.]*", name):
                raise ValueError(f"not a PostgreSQL setting name: {name!r}")
            quoted = value.replace("'", "''")
            conf += f"{name} = '{quoted}'\n"
        with (self.data / "postgresql.conf").open("a") as f:
            f.write(conf)

    # -- control --------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self.url_for("postgres")

    def url_for(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self, timeout: float = 30.0) -> None:
        """Start (again, with its data) on the same port; return once it accepts TCP connections."""
        deadline = time.monotonic() + timeout
        done = self._run_as_owner([self._bin("pg_ctl"), "-D", str(self.data), "-l", str(self.log_path),
                                   "-w", "-t", str(int(timeout)), "start"], timeout=timeout + 10)
        self.running = True  # even on failure: close() still stops whatever did start
        if done.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed ({done.returncode}): {done.stdout}{done.stderr}\n"
                               f"server log:\n{self.log()}")
        while True:
            ready = subprocess.run([self._bin("pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-t", "1"],
                                   capture_output=True, text=True, timeout=10, check=False)
            if ready.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL on port {self.port} did not accept connections within "
                                   f"{timeout}s ({ready.stdout.strip()}); server log:\n{self.log()}")
            time.sleep(0.05)

    def stop(self, mode: str = "fast", timeout: float = 30.0) -> None:
        """`fast`: sessions are terminated, a clean shutdown. `immediate`: every server process
        quits at once without a checkpoint, like a crash; the next start runs crash recovery."""
        if mode not in ("fast", "immediate"):
            raise ValueError(f"unknown stop mode {mode!r}")
        if not self.running:
            return
        done = self._run_as_owner([self._bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w",
                                   "-t", str(int(timeout)), "stop"], timeout=timeout + 10)
        if done.returncode != 0 and "Is server running?" not in done.stderr:
            raise RuntimeError(f"pg_ctl stop -m {mode} failed ({done.returncode}): {done.stdout}{done.stderr}\n"
                               f"server log:\n{self.log()}")
        self.running = False

    def restart(self, mode: str = "fast", down_for: float = 0.0) -> None:
        """Stop, stay down for `down_for` seconds (clients meanwhile find nobody), start again."""
        self.stop(mode)
        if down_for:
            time.sleep(down_for)  # the scenario: the outage lasts this long
        self.start()

    def create_database(self, name: str) -> str:
        """CREATE DATABASE `name`; returns its URL."""
        done = subprocess.run([self._bin("createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                               name], capture_output=True, text=True, timeout=30, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"createdb {name} failed: {done.stderr}\nserver log:\n{self.log()}")
        return self.url_for(name)

    def close(self) -> None:
        """Stop at once and remove the cluster's files."""
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-5000:]
        except OSError:
            return ""
