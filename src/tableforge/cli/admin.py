"""`tableforge admin`: the operator's cluster commands, through any instance's admin API.

    tableforge admin instances                  # live instances: sockets, rooms, drain state
    tableforge admin drain INSTANCE_ID [--window S] [--notice S]
    tableforge admin resume INSTANCE_ID
    tableforge admin rebalance [--tolerance F] [--min-sockets N] [--window S]

They speak HTTP to `--url` (any instance, or the balancer) with an administrator's bearer token
(`--token` or TABLEFORGE_ADMIN_TOKEN), so they work from any machine and are authorized and logged
like the API. Exit 1 on an error answer, 2 on bad options or an unreachable server."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from tableforge.cli.common import fail, say

admin_app = typer.Typer(help="Cluster operations: instances, draining, rebalancing.", no_args_is_help=True)

Url = Annotated[str, typer.Option("--url", envvar="TABLEFORGE_ADMIN_URL",
                                  help="An instance's (or the balancer's) base URL.")]
Token = Annotated[str, typer.Option("--token", envvar="TABLEFORGE_ADMIN_TOKEN",
                                    help="An administrator's bearer token.")]
DEFAULT_URL = "http://127.0.0.1:8000"


def _call(method: str, url: str, token: str, path: str, body: dict[str, Any] | None = None) -> Any:
    import httpx

    if not url.startswith(("http://", "https://")):
        raise fail(f"--url {url!r} is not an http(s) URL like {DEFAULT_URL}")
    if not token:
        raise fail("an administrator's token is needed: --token or TABLEFORGE_ADMIN_TOKEN "
                   "(log in as an admin: POST /api/auth/login)")
    try:
        r = httpx.request(method, url.rstrip("/") + path, json=body, timeout=15,
                          headers={"Authorization": f"Bearer {token}"})
    except httpx.HTTPError as exc:
        raise fail(f"{url} did not answer ({type(exc).__name__}: {exc})") from None
    try:
        data = r.json()
    except ValueError:
        data = None
    if r.status_code >= 400:
        error = data.get("error", {}) if isinstance(data, dict) else {}
        raise fail(f"{r.status_code} {error.get('code', '')}: {error.get('message', r.text[:200])}", 1)
    return data


def _drain_state(instance: dict[str, Any]) -> str:
    drain = instance.get("drain")
    return str(drain.get("state", "serving")) if isinstance(drain, dict) else "serving"


@admin_app.command("instances")
def instances(url: Url = DEFAULT_URL, token: Token = "") -> None:
    """Live instances with their sockets, rooms and drain state."""
    body = _call("GET", url, token, "/api/admin/stats")
    for i in body.get("instances", []):
        typer.echo(f"{i.get('instance_id')}\tsockets={i.get('connections')}\trooms={i.get('rooms')}"
                   f"\t{_drain_state(i)}{'  (stale)' if i.get('stale') else ''}")
    say(f"{body.get('total')} instance(s), {body.get('connections')} socket(s)")


@admin_app.command("drain")
def drain(
    instance_id: Annotated[str, typer.Argument(help="The instance, as `tableforge admin instances` lists it.")],
    url: Url = DEFAULT_URL, token: Token = "",
    window: Annotated[float | None, typer.Option(min=0, max=3600, help="Seconds to close the sockets over.")] = None,
    notice: Annotated[float | None, typer.Option(min=0, max=600,
                                                 help="Seconds of /ready 503 before the first close.")] = None,
) -> None:
    """Drain one instance: /ready 503, no new sockets, then its sockets closed (1012) over the window."""
    body: dict[str, Any] = {}
    if window is not None:
        body["window_seconds"] = window
    if notice is not None:
        body["notice_seconds"] = notice
    out = _call("POST", url, token, f"/api/admin/instances/{instance_id}/drain", body or None)
    say(f"{out['instance_id']}: draining (notice {out['notice_seconds']:g} s, window {out['window_seconds']:g} s)",
        "green")


@admin_app.command("resume")
def resume(instance_id: Annotated[str, typer.Argument(help="A draining or drained instance.")],
           url: Url = DEFAULT_URL, token: Token = "") -> None:
    """Stop an instance's drain: it is ready and accepts sockets again."""
    out = _call("DELETE", url, token, f"/api/admin/instances/{instance_id}/drain")
    say(f"{out['instance_id']}: serving", "green")


@admin_app.command("rebalance")
def rebalance(
    url: Url = DEFAULT_URL, token: Token = "",
    tolerance: Annotated[float | None, typer.Option(min=0, max=10,
                                                    help="Busy above mean x (1 + tolerance).")] = None,
    min_sockets: Annotated[int | None, typer.Option("--min-sockets", min=1,
                                                    help="...and at least this many over the mean.")] = None,
    window: Annotated[float | None, typer.Option(min=0, max=3600, help="Seconds to shed over.")] = None,
) -> None:
    """Ask the busiest instances to shed their excess sockets (1012) toward the mean, gradually."""
    body: dict[str, Any] = {k: v for k, v in (("tolerance", tolerance), ("min_sockets", min_sockets),
                                              ("window_seconds", window)) if v is not None}
    out = _call("POST", url, token, "/api/admin/rebalance", body or None)
    for i in out["instances"]:
        note = f"sheds {i['shed']}" if i["shed"] else ("draining" if i["draining"] else "-")
        typer.echo(f"{i['instance_id']}\tsockets={i['connections']}\t{note}")
    if out["shed"]:
        say(f"{out['shed']} socket(s) to move over {out['window_seconds']:g} s (mean {out['mean']:g})", "green")
    else:
        say(f"balanced enough (mean {out['mean']:g}, tolerance {out['tolerance']:g}, "
            f"min {out['min_sockets']} over): nothing to shed")
