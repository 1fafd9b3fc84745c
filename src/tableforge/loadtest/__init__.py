"""`tableforge loadtest` and `tableforge cluster`: simulated players against real instances, measured
with HDR histograms and the servers' own metrics, checked against the plan's targets."""
