"""Under mpiexec: one rank fails at step 5 while the others train on; the launcher then ends them.

    failing_rank.py PROV_DIR raise RANK    the rank raises (its document says FAILED, then MPI is aborted)
    failing_rank.py PROV_DIR kill RANK     the rank is killed with SIGKILL (nothing inside it can say so)
"""
import os
import signal
import sys
import time

from mpi4py import MPI

import yprov4ml

save_dir, how, failing = sys.argv[1], sys.argv[2], int(sys.argv[3])
comm = MPI.COMM_WORLD
with yprov4ml.start_run(experiment_name="failing", provenance_save_dir=save_dir, collect_all_processes=True,
                        collection_timeout_s=10):
    for step in range(200):
        yprov4ml.log_metric("loss", 1.0 / (step + 1), step=step)
        comm.Barrier()
        if step == 5 and comm.Get_rank() == failing:
            if how == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            raise RuntimeError(f"rank {failing} diverged at step 5")
        time.sleep(0.02)
