"""Under mpiexec: rank 2 fails at step 5 while the others train on; the launcher then ends them."""
import sys
import time

from mpi4py import MPI

import yprov4ml

comm = MPI.COMM_WORLD
with yprov4ml.start_run(experiment_name="failing", provenance_save_dir=sys.argv[1], collect_all_processes=True,
                        collection_timeout_s=10):
    for step in range(200):
        yprov4ml.log_metric("loss", 1.0 / (step + 1), step=step)
        comm.Barrier()
        if step == 5 and comm.Get_rank() == 2:
            raise RuntimeError("rank 2 diverged at step 5")
        time.sleep(0.02)
