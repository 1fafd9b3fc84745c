"""`tableforge users create`: the way operators make accounts (and admins)."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from tableforge.cli.common import load_settings, say

users_app = typer.Typer(help="Manage user accounts.", no_args_is_help=True)


@users_app.command("create")
def users_create(
    name: Annotated[str, typer.Argument(help="Username")],
    admin: Annotated[bool, typer.Option("--admin", help="Make the user an administrator.")] = False,
    password: Annotated[str | None, typer.Option(help="Password (prompted when omitted).")] = None,
) -> None:
    """Create a user (the way operators make admins)."""
    from pydantic import ValidationError

    from tableforge.api.models import RegisterIn
    from tableforge.db import migrate as migrations
    from tableforge.domain.errors import AppError
    from tableforge.services import users
    from tableforge.wiring.backends import build_runtime

    if password is None:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        RegisterIn(username=name, password=password)
    except ValidationError as exc:
        say(f"{exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}", "red")
        raise typer.Exit(2) from None

    async def run() -> None:
        rt = build_runtime(load_settings())
        try:
            await migrations.upgrade(rt.db)
            user = await users.create_user(rt, name, password, is_admin=admin)
            say(f"{user['username']} ({user['id']}){' as admin' if admin else ''}", "green", prefix="created")
        except AppError as exc:
            say(exc.message, "red")
            raise typer.Exit(1) from None
        finally:
            await rt.db.dispose()

    asyncio.run(run())
