"""What every command shares: the settings with friendly errors, and short messages on stderr.

Messages go through click's styling (which typer already loads) rather than rich, so that
`tableforge serve` does not load rich and pygments into the server process (~7 MB of RSS)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from tableforge.config import Settings


def say(message: str, color: str | None = None, prefix: str = "") -> None:
    """One line on stderr; `prefix` (e.g. "error:") is the coloured part when a colour is given."""
    if prefix:
        typer.secho(prefix, fg=color, err=True, nl=False)
        typer.echo(" " + message, err=True)
    else:
        typer.secho(message, fg=color, err=True)


def fail(message: str, code: int = 2) -> typer.Exit:
    say(message, "red", prefix="error:")
    return typer.Exit(code)


def load_settings() -> Settings:
    from pydantic import ValidationError

    from tableforge.config import Settings

    try:
        return Settings()
    except ValidationError as exc:
        say("Invalid configuration:", "red")
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"]) or "settings"
            say(f"  TABLEFORGE_{field.upper()}: {err['msg']}")
        raise typer.Exit(2) from None
