"""Under mpiexec: every rank records a short run (what rank 0 captures for the others: capture.shared)."""

import sys

import yprov4ml

yprov4ml.start_run("www.example.org", "capture", sys.argv[1], collect_all_processes=True)
for step in range(5):
    yprov4ml.log_metric("loss", 1.0 / (step + 1), step=step)
yprov4ml.end_run()
