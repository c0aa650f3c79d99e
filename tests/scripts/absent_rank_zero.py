"""Under mpiexec: rank 0 never calls start_run; the others must not wait for its run id forever."""
import sys
import time

from mpi4py import MPI

import yprov4ml

if MPI.COMM_WORLD.Get_rank() == 0:
    time.sleep(30)  # busy elsewhere (or hung): no start_run
    sys.exit(0)
try:
    yprov4ml.start_run(experiment_name="absent", provenance_save_dir=sys.argv[1], collect_all_processes=True,
                       collection_timeout_s=2)
except yprov4ml.YProvError as exc:
    print(f"rank {MPI.COMM_WORLD.Get_rank()}: {exc}", flush=True)
    MPI.COMM_WORLD.Abort(3)
