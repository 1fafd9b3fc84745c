"""`tableforge loadtest` and `tableforge cluster`.

Both need the `loadtest` extra (aiohttp, hdrhistogram, matplotlib), which a server install does not
have: the commands check for it first and say how to install it; everything they use (rich
included) is imported inside them."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated
from urllib.parse import urlsplit

import typer

from tableforge.cli.common import fail as _fail

if TYPE_CHECKING:
    from rich.table import Table

# the `loadtest` extra's packages by import name (matplotlib only draws the --report charts)
LOADTEST_MODULES = {"aiohttp": "aiohttp", "hdrh": "hdrhistogram", "matplotlib": "matplotlib"}


def require_loadtest_extra(command: str) -> None:
    """Exit 2 with one line when the `loadtest` extra is not installed."""
    missing = []
    for name, package in LOADTEST_MODULES.items():
        try:
            found = importlib.util.find_spec(name) is not None  # found, not imported (matplotlib is slow)
        except (ImportError, ValueError):  # ValueError: blocked in sys.modules
            found = False
        if not found:
            missing.append(package)
    if missing:
        raise _fail(f"`tableforge {command}` needs the loadtest extra (missing: {', '.join(missing)}): "
                    "pip install 'tableforge[loadtest]'")


def _cpus(option: str, spec: str | None) -> set[int] | None:
    """A `taskset -c` CPU list, or exit 2 saying what is wrong with it."""
    if spec is None:
        return None
    from tableforge.loadtest.affinity import PinError, parse_cpus

    try:
        return parse_cpus(spec)
    except PinError as exc:
        raise _fail(f"{option}: {exc}") from None


def cluster(
    instances: Annotated[int, typer.Option("--instances", "-k", min=1, max=32, help="How many instances.")] = 2,
    base_port: Annotated[int, typer.Option(min=1024, max=65000, help="First port; the rest follow.")] = 8001,
    log_dir: Annotated[Path | None, typer.Option(help="Instance logs (default: <data dir>/logs).")] = None,
    pin_server: Annotated[str | None, typer.Option("--pin-server", metavar="CPUS",
                                                   help="Run the instances on these CPUs (e.g. 1).")] = None,
) -> None:
    """Run K scale-out instances on 127.0.0.1 ports P, P+1, … until Ctrl-C or SIGTERM."""
    require_loadtest_extra("cluster")
    cpus = _cpus("--pin-server", pin_server)
    from pydantic import ValidationError
    from rich.console import Console

    from tableforge.config import Settings
    from tableforge.loadtest.cluster import ClusterError, ClusterRunner

    console = Console(stderr=True)

    try:
        settings = Settings()
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(map(str, err["loc"])).upper()
        raise _fail(f"invalid configuration: TABLEFORGE_{field}: {err['msg']}") from None
    if not settings.is_postgres:
        raise _fail("`tableforge cluster` needs PostgreSQL: set TABLEFORGE_DATABASE_URL=postgresql://… "
                    "(embedded SQLite keeps its rooms in one process)")
    if not settings.redis_url:
        raise _fail("`tableforge cluster` needs Redis for the shared cache and fan-out: "
                    "set TABLEFORGE_REDIS_URL=redis://…")
    if base_port + instances - 1 > 65535:
        raise _fail("--base-port + --instances runs past port 65535")
    prefix = settings.redis_namespace or None
    runner = ClusterRunner(instances, base_port, log_dir or Path(settings.data_dir) / "logs",
                           prefix=f"{prefix}-{int(time.time())}" if prefix else None, console=console,
                           cpus=cpus)
    try:
        code = runner.run()
    except ClusterError as exc:
        raise _fail(str(exc), 1) from None
    raise typer.Exit(code)


def loadtest(
    url: Annotated[list[str], typer.Option("--url", help="Server base URL; repeat for several instances.")],
    users: Annotated[int, typer.Option(min=1, max=20000, help="Simulated players.")] = 100,
    rooms: Annotated[int, typer.Option(min=1, max=5000, help="Rooms (players are spread over them).")] = 20,
    duration: Annotated[float, typer.Option(min=1, max=3600, help="Seconds of play after the ramp-up.")] = 30.0,
    ramp_up: Annotated[float, typer.Option("--ramp-up", min=0, max=3600,
                                           help="Seconds over which players arrive.")] = 10.0,
    seed: Annotated[int, typer.Option(help="Random seed (the mix and timing).")] = 1,
    think_time: Annotated[float, typer.Option("--think-time", min=0.05, max=60,
                                              help="Mean seconds between a player's actions.")] = 2.0,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the results as JSON here.")] = None,
    report: Annotated[Path | None, typer.Option("--report", help="Write an HTML report (with charts) here.")] = None,
    admin_token: Annotated[str | None, typer.Option("--admin-token", envvar="TABLEFORGE_ADMIN_TOKEN",
                                                    help="Admin bearer token for /api/admin/stats.")] = None,
    setup_timeout: Annotated[float, typer.Option(min=5, max=3600,
                                                 help="Cap on registration and room setup (s).")] = 600.0,
    check: Annotated[bool, typer.Option("--check", help="Exit 1 when a target fails.")] = False,
    processes: Annotated[int, typer.Option(min=1, max=64, help="Processes that run the players (rooms are "
                                           "dealt out whole); the report is one.")] = 1,
    pin_client: Annotated[str | None, typer.Option("--pin-client", metavar="CPUS",
                                                   help="Run the load generator on these CPUs (e.g. 0, 0-1).")] = None,
    pin_server: Annotated[str | None, typer.Option("--pin-server", metavar="CPUS",
                                                   help="Pin the local instances to these CPUs for the run.")] = None,
    batch: Annotated[bool, typer.Option("--batch/--no-batch", help="Players announce `batch` in join (the server "
                                        "may send queued frames as one message).")] = True,
) -> None:
    """Simulated players against one or more servers; latency, integrity and the plan's targets."""
    require_loadtest_extra("loadtest")
    urls = []
    for u in url:
        try:
            parts = urlsplit(u.strip())
            valid = parts.scheme in ("http", "https") and bool(parts.hostname)
            _ = parts.port  # ValueError when not a number in 0-65535
        except ValueError:
            valid = False
        if not valid:
            raise _fail(f"--url {u!r} is not an http(s) URL like http://127.0.0.1:8000")
        urls.append(u.strip().rstrip("/"))
    if rooms > users:
        raise _fail(f"--rooms ({rooms}) cannot exceed --users ({users}): every room needs a game master")
    if processes > rooms:
        raise _fail(f"--processes ({processes}) cannot exceed --rooms ({rooms}): a room's players share a process")
    client_cpus, server_cpus = _cpus("--pin-client", pin_client), _cpus("--pin-server", pin_server)
    for path in (json_path, report):
        if path is not None and not path.parent.exists():
            raise _fail(f"directory {path.parent} does not exist (for {path})")

    from rich.console import Console
    from rich.live import Live
    from rich.table import Table

    from tableforge.loadtest import runner
    from tableforge.loadtest.affinity import PinError
    from tableforge.loadtest.probes import Unreachable
    from tableforge.loadtest.report import print_report, write_html, write_json
    from tableforge.loadtest.scenario import LoadConfig, LoadTest, SetupError
    from tableforge.loadtest.workers import MultiLoadTest, WorkerError

    console, out = Console(stderr=True), Console()
    cfg = LoadConfig(urls=urls, users=users, rooms=rooms, duration=duration, ramp_up=ramp_up, seed=seed,
                     think_time=think_time, admin_token=admin_token, setup_timeout=setup_timeout,
                     processes=processes, pin_client=client_cpus, pin_server=server_cpus, batch=batch)
    lt: LoadTest | MultiLoadTest = LoadTest(cfg) if processes == 1 else MultiLoadTest(cfg)

    def status() -> Table:
        t = Table(show_header=False, title="tableforge loadtest")
        t.add_column()
        t.add_column(justify="right")
        elapsed = time.perf_counter() - lt.play_started if lt.play_started else 0.0
        now = lt.progress()
        t.add_row("phase", lt.phase)
        t.add_row("elapsed / planned s", f"{max(0.0, elapsed):.0f} / {ramp_up + duration:g}")
        t.add_row("players online", f"{now['online']} / {users}")
        t.add_row("actions", str(now["actions"]))
        t.add_row("errors", str(now["errors"]))
        t.add_row("HTTP requests / acks / deliveries", f"{now['http']} / {now['acks']} / {now['deliveries']}")
        p95 = now["delivery_p95_ms"]
        t.add_row("delivery p95 ms (last second)", "-" if p95 is None else f"{p95:.1f}")
        t.add_row(f"client CPU % ({processes} process{'es' if processes > 1 else ''})",
                  f"{lt.client.cpu[-1]:.0f}" if lt.client.cpu else "-")
        return t

    def set_phase(phase: str) -> None:
        lt.phase = phase

    lt.on_phase = set_phase
    bound = setup_timeout + ramp_up + duration + 120

    async def main() -> dict[str, object]:
        with Live(status(), console=console, refresh_per_second=2, transient=True) as live:
            async def refresher() -> None:
                while True:
                    live.update(status())
                    await asyncio.sleep(0.5)

            task = asyncio.create_task(refresher())
            try:
                return await asyncio.wait_for(lt.run(), bound)
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def on_term(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, on_term)
    try:
        result = runner.run(main())
    except Unreachable as exc:
        raise _fail(f"{exc}. Start one with `tableforge serve` or `tableforge cluster`.") from None
    except SetupError as exc:
        raise _fail(f"setup failed: {exc}", 1) from None
    except PinError as exc:
        raise _fail(str(exc)) from None
    except WorkerError as exc:
        raise _fail(str(exc), 1) from None
    except TimeoutError:
        raise _fail(f"the run did not finish within {bound:g} s (setup timeout + ramp-up + duration + 120 s)",
                    1) from None
    except KeyboardInterrupt:
        raise _fail("interrupted", 130) from None
    finally:
        signal.signal(signal.SIGTERM, old)
    print_report(result, out)
    if json_path:
        write_json(result, json_path)
        console.print(f"wrote {json_path}")
    if report:
        write_html(result, report)
        console.print(f"wrote {report}")
    if check and not result["all_targets_pass"]:
        raise typer.Exit(1)
