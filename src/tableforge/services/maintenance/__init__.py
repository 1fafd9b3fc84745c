"""Maintenance jobs and the scheduler that runs them, one instance at a time across the cluster.

- `jobs.py`, `asset_gc.py`: what each job does (a small JSON summary comes back).
- `runner.py`: one run: recorded in `maintenance_runs`, timed, logged, counted; never raises.
- `scheduler.py`: per instance, a loop that holds the lease (`lease.py`, `redis_lease.py`) and
  starts the jobs that are due; `status.py`: what `GET /api/admin/maintenance` shows.

Nothing is imported here: `services/runtime.py` imports `state.py`, which must not pull the jobs in.
"""
