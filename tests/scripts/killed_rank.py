"""Under mpiexec: rank 5 of 8 is killed with SIGKILL at step 5; the launcher then kills the others."""
import os
import signal
import sys
import time

from mpi4py import MPI

import yprov4ml

comm = MPI.COMM_WORLD
with yprov4ml.start_run(experiment_name="killed", provenance_save_dir=sys.argv[1], collect_all_processes=True,
                        collection_timeout_s=10):
    for step in range(200):
        yprov4ml.log_metric("loss", 1.0 / (step + 1), step=step)
        comm.Barrier()
        if step == 5 and comm.Get_rank() == 5:
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(0.02)
