"""TableForge: a real-time multiplayer virtual tabletop server."""

import sys as _sys

__version__ = "0.1.0"


def _import_without_rich() -> None:
    """structlog and httpx import rich and pygments when they are installed, which they always are
    (typer needs rich): structlog for pretty tracebacks our logs never use (`format_exc_info` renders
    exceptions as plain text before either renderer runs), httpx for its command-line client. Hidden
    from these first imports, rich and pygments stay out of the server process (~7 MB of RSS); the
    CLI's own `import rich` later (db reports, loadtest) is unaffected."""
    if "rich" in _sys.modules or ("structlog" in _sys.modules and "httpx" in _sys.modules):
        return
    hidden = ("rich", "pygments")
    saved = {name: _sys.modules.get(name) for name in hidden}
    for name in hidden:
        _sys.modules[name] = None  # type: ignore[assignment]  # `import rich` raises ImportError
    try:
        import httpx  # noqa: F401
        import structlog  # noqa: F401
    finally:
        for name, module in saved.items():
            if module is None:
                del _sys.modules[name]
            else:
                _sys.modules[name] = module


_import_without_rich()
