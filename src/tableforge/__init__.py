"""TableForge: a real-time multiplayer virtual tabletop server."""

__version__ = "0.1.0"
