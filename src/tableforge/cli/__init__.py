"""`tableforge`: serve, migrate, users, db reports, maintenance, backup and restore, export and import
of rooms, admin (cluster operations), loadtest, cluster.

The console script (`tableforge = "tableforge.cli:app"`) imports this package for every command,
`serve` included, so the command modules import nothing heavy at module level: rich, Alembic, the
database layer and the load generator are imported inside the commands that use them."""

from __future__ import annotations

import sys

import typer

from tableforge.cli.admin import admin_app
from tableforge.cli.backup import backup, restore
from tableforge.cli.db import db_app
from tableforge.cli.load import cluster, loadtest
from tableforge.cli.maintenance import maintenance_app
from tableforge.cli.serve import migrate, serve
from tableforge.cli.transfer import export, import_
from tableforge.cli.users import users_app

app = typer.Typer(help="TableForge: a real-time multiplayer virtual tabletop server.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
# the order of `tableforge --help`, as before the package split
app.add_typer(users_app, name="users")
app.add_typer(db_app, name="db")
app.add_typer(maintenance_app, name="maintenance")
app.add_typer(admin_app, name="admin")
app.command("loadtest")(loadtest)
app.command("cluster")(cluster)
app.command("serve")(serve)
app.command("migrate")(migrate)
app.command("backup")(backup)
app.command("restore")(restore)
app.command("export")(export)
app.command("import")(import_)


def main() -> None:  # pragma: no cover
    app(sys.argv[1:])
