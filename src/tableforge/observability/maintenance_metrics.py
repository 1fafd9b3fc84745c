"""Metrics of the maintenance jobs (services/maintenance). Labels: the job name and the outcome,
both small fixed sets (domain/maintenance.py). The dashboard and alert rules use these names."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from tableforge.domain.maintenance import JOB_NAMES

RUNS = Counter("tableforge_maintenance_runs_total",
               "Maintenance job runs that ended, by job and outcome (ok, failed, abandoned)", ["job", "outcome"])
LAST_SUCCESS = Gauge("tableforge_maintenance_last_success_timestamp_seconds",
                     "When the job last finished successfully on any instance (read from the runs table)",
                     ["job"], multiprocess_mode="max")
DURATION = Histogram("tableforge_maintenance_duration_seconds", "Maintenance job run duration, by job", ["job"],
                     buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0))
LEASE_HELD = Gauge("tableforge_maintenance_lease_held", "1 while this instance holds the maintenance lease",
                   multiprocess_mode="max")

# Every job's series exist from the start (at 0), so a rate() or an absent() in an alert rule sees them.
for _job in JOB_NAMES:
    DURATION.labels(_job)
    for _outcome in ("ok", "failed", "abandoned"):
        RUNS.labels(_job, _outcome)
