"""Pure rules with no I/O: errors, dice notation, permissions, validation limits, event types."""
