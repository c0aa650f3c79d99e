#!/bin/bash
# Distributed training with mpirun / mpiexec outside Slurm (a workstation, a cloud VM, an interactive node).
#
#   hpc/mpirun.sh 4                 # 4 ranks
#   hpc/mpirun.sh 4 --epochs 5      # extra arguments go to the training script
#
# MPICH's Hydra exports no job id: yprov4ml's ranks agree on the run id through
# mpi4py (rank 0 broadcasts it). -disable-auto-cleanup keeps the other ranks
# running (and recording) when one rank dies; Open MPI's equivalent is
# --enable-recovery.
set -euo pipefail
NP=${1:-4}
shift || true
HERE=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-python}
MPIEXEC=${MPIEXEC:-mpiexec}

if "$MPIEXEC" --version 2>&1 | grep -qi "open mpi"; then
    KEEP_GOING=(--enable-recovery)
else
    KEEP_GOING=(-disable-auto-cleanup)
fi
"$MPIEXEC" "${KEEP_GOING[@]}" -n "$NP" "$PYTHON" "$HERE/examples/distributed_train.py" "$@"
