"""Under mpiexec: the default collect_all_processes=False, every rank calling every directive."""

import sys

import yprov4ml

run = yprov4ml.start_run("www.example.org", "r0", sys.argv[1])
yprov4ml.log_param("lr", 0.1)
for step in range(20):
    yprov4ml.log_metric("loss", 1.0 / (step + 1), step=step)
yprov4ml.log_system_metrics(step=0)
yprov4ml.end_run()
print(f"rank {run.rank} {'noop' if isinstance(run, yprov4ml.api.NoOpRun) else 'recorded'}", flush=True)
