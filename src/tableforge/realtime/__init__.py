"""Real time: the wire protocol, the broker (memory or Redis), the hub of local sockets, presence."""
