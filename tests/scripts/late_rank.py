"""Under mpiexec: the last rank ends long after the others; rank 0 must not wait for it past the timeout."""
import sys
import time

from mpi4py import MPI

import yprov4ml

rank = MPI.COMM_WORLD.Get_rank()
late = MPI.COMM_WORLD.Get_size() - 1
yprov4ml.start_run("www.example.org", "late", sys.argv[1], collect_all_processes=True, collection_timeout_s=2)
yprov4ml.log_metric("loss", 1.0 / (rank + 1))
if rank == late:
    time.sleep(10)  # stuck (a slow file system, a hung collective elsewhere): not dead
started = time.monotonic()
yprov4ml.end_run()
print(f"rank {rank} ended after {time.monotonic() - started:.1f} s", flush=True)
