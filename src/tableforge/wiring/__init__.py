"""The composition root: what assembles the running app, above the services and beside api/.

`backends` picks each implementation once, from the configured URLs (the scheme), importing a
backend's client library only when it is used; `lifecycle` starts and stops it all; `tuning` holds
the process-wide settings (allocator, garbage collector) that are about this process, not the app.
"""
