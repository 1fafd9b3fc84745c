"""TableForge: a real-time multiplayer virtual tabletop server."""

import sys as _sys
from collections.abc import Iterator as _Iterator
from contextlib import contextmanager as _contextmanager

__version__ = "0.1.0"


@_contextmanager
def without_rich() -> _Iterator[None]:
    """Imports inside this block see no rich and no pygments.

    structlog and httpx import rich and pygments when they are installed, which they always are
    (typer needs rich): structlog for pretty tracebacks our logs never use (`format_exc_info` renders
    exceptions as plain text before either renderer runs), httpx for its command-line client. Hidden
    from their first import, rich and pygments stay out of the server process (~7 MB of RSS). A
    process that already loaded rich (the CLI's db reports, the load generator) is left as it is."""
    if "rich" in _sys.modules:
        yield
        return
    hidden = ("rich", "pygments")
    saved = {name: _sys.modules.get(name) for name in hidden}
    for name in hidden:
        _sys.modules[name] = None  # type: ignore[assignment]  # `import rich` raises ImportError
    try:
        yield
    finally:
        for name, module in saved.items():
            if module is None:
                del _sys.modules[name]
            else:
                _sys.modules[name] = module


# Every module logs through structlog, so it is imported here, first. httpx (the CDN purge hook's
# client, `cache/purge.py`) is imported there, through `without_rich`, only when a purge URL is set.
with without_rich():
    import structlog as _structlog  # noqa: F401
