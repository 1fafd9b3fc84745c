"""The services never ask which database they are on (`is_postgres`), nor import a backend's
driver or the PostgreSQL event log: the wiring picks the backends, the services see interfaces."""

from __future__ import annotations

import ast
from pathlib import Path

import tableforge

SERVICES = Path(tableforge.__file__).parent / "services"


def test_services_do_not_ask_which_database() -> None:
    asked = []
    for path in sorted(SERVICES.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr == "is_postgres":
                asked.append(f"{path.name}:{node.lineno}")
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            asked += [f"{path.name}:{node.lineno} imports {n}" for n in names
                      if n.split(".")[0] == "asyncpg" or n == "tableforge.db.pg_event_log"]
    assert asked == []
