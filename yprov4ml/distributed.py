"""Ranks: who this process is in a parallel job, and the run id all ranks agree on.

Rank, local rank and world size are read from the launcher's environment, in
this order (an MPI launcher started inside a Slurm allocation wins over the
allocation's own variables):

| launcher            | rank                   | world size             | local rank                   | job id for the run id        |
|---------------------|------------------------|------------------------|------------------------------|------------------------------|
| Open MPI (mpirun)   | OMPI_COMM_WORLD_RANK   | OMPI_COMM_WORLD_SIZE   | OMPI_COMM_WORLD_LOCAL_RANK   | PMIX_NAMESPACE / OMPI_MCA_ess_base_jobid |
| MPICH / Hydra       | PMI_RANK               | PMI_SIZE               | MPI_LOCALRANKID              | none: mpi4py broadcast       |
| Intel MPI (Hydra)   | PMI_RANK               | PMI_SIZE               | MPI_LOCALRANKID              | none: mpi4py broadcast       |
| PMIx (prterun, ...) | PMIX_RANK              | PMIX_SIZE/OMPI size    | PMIX_LOCAL_RANK              | PMIX_NAMESPACE               |
| torchrun            | RANK                   | WORLD_SIZE             | LOCAL_RANK                   | TORCHELASTIC_RUN_ID (if set) |
| Slurm srun          | SLURM_PROCID           | SLURM_NTASKS           | SLURM_LOCALID                | SLURM_JOB_ID.SLURM_STEP_ID   |
"""

from __future__ import annotations

import os
import sys
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Mapping

from .errors import YProvError
from .identifiers import safe_name

RUN_ID_VARIABLE = "YPROV4ML_RUN_ID"


@dataclass(frozen=True)
class RankInfo:
    """This process's place in its job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    launcher: str = "none"
    job_id: str | None = None


def _int(environ: Mapping[str, str], name: str, default: int = 0) -> int:
    try:
        return int(environ.get(name, default))
    except ValueError:
        return default


def _slurm_job(environ: Mapping[str, str]) -> str | None:
    job = environ.get("SLURM_JOB_ID") or environ.get("SLURM_JOBID")
    if not job:
        return None
    step = environ.get("SLURM_STEP_ID") or environ.get("SLURM_STEPID")
    return f"slurm{job}" + (f".{step}" if step else "")


def detect_rank(environ: Mapping[str, str] | None = None) -> RankInfo:
    """Rank, world size and local rank from the launcher's environment variables."""
    env = os.environ if environ is None else environ
    if "OMPI_COMM_WORLD_RANK" in env:
        job = env.get("PMIX_NAMESPACE") or env.get("OMPI_MCA_ess_base_jobid")
        return RankInfo(_int(env, "OMPI_COMM_WORLD_RANK"), _int(env, "OMPI_COMM_WORLD_SIZE", 1),
                        _int(env, "OMPI_COMM_WORLD_LOCAL_RANK"), "openmpi",
                        f"ompi-{job}" if job else _slurm_job(env))
    if "PMI_RANK" in env:
        launcher = "intelmpi" if any(k.startswith("I_MPI_") for k in env) else "mpich"
        # Hydra exports no job id; under srun --mpi=pmi2 Slurm's ids still apply.
        return RankInfo(_int(env, "PMI_RANK"), _int(env, "PMI_SIZE", 1), _int(env, "MPI_LOCALRANKID"),
                        launcher, _slurm_job(env) if "SLURM_PROCID" in env else None)
    if "PMIX_RANK" in env:
        job = env.get("PMIX_NAMESPACE")
        size = _int(env, "PMIX_SIZE", 0) or _int(env, "SLURM_NTASKS", 1)
        return RankInfo(_int(env, "PMIX_RANK"), size, _int(env, "PMIX_LOCAL_RANK"), "pmix",
                        f"pmix-{job}" if job else _slurm_job(env))
    if "RANK" in env and "WORLD_SIZE" in env:
        run = env.get("TORCHELASTIC_RUN_ID")
        return RankInfo(_int(env, "RANK"), _int(env, "WORLD_SIZE", 1), _int(env, "LOCAL_RANK"), "torchrun",
                        f"torchrun-{run}" if run and run != "none" else _slurm_job(env))
    if "SLURM_PROCID" in env and "SLURM_STEP_ID" in env:
        return RankInfo(_int(env, "SLURM_PROCID"), _int(env, "SLURM_NTASKS", 1), _int(env, "SLURM_LOCALID"),
                        "slurm", _slurm_job(env))
    return RankInfo()


def mpi_comm() -> object | None:
    """mpi4py's COMM_WORLD when the user's program has already initialised MPI."""
    mpi = sys.modules.get("mpi4py.MPI")
    if mpi is None:
        return None
    try:
        return mpi.COMM_WORLD if mpi.Is_initialized() and not mpi.Is_finalized() else None
    except Exception:
        return None


def torch_group() -> tuple[int, int] | None:
    """(rank, world size) of torch.distributed's default group, when the program has initialised it."""
    dist = sys.modules.get("torch.distributed")
    try:
        if dist is not None and dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
    except Exception:
        pass
    return None


def _torch_broadcast(value: str | None) -> str:
    import torch.distributed as dist

    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def _import_mpi_comm() -> object | None:
    try:
        from mpi4py import MPI
    except ImportError:
        return None
    return MPI.COMM_WORLD


def new_run_id(experiment: str) -> str:
    """A fresh, collision-free run id: experiment, UTC time, random suffix."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"{safe_name(experiment)}-{stamp}-{uuid.uuid4().hex[:8]}"


def agree_run_id(experiment: str, ranks: RankInfo, explicit: str | None, sequence: int,
                 environ: Mapping[str, str] | None = None) -> str:
    """The run id every rank of the job computes identically (never guessed from the file system).

    ``sequence`` counts the runs started earlier in this process, so that a job
    that starts several runs gets one id per run.
    """
    env = os.environ if environ is None else environ
    given = explicit or env.get(RUN_ID_VARIABLE)
    if given:
        return safe_name(given) + (f"-{sequence}" if sequence and not explicit else "")
    if ranks.world_size <= 1 and mpi_comm() is None:
        return new_run_id(experiment)
    if ranks.job_id:
        return f"{safe_name(experiment)}-{safe_name(ranks.job_id)}" + (f"-{sequence}" if sequence else "")
    if torch_group() is not None:  # torch.distributed (Lightning DDP, torchrun): rank 0 decides
        return _torch_broadcast(new_run_id(experiment) if ranks.rank == 0 else None)
    comm = mpi_comm() or _import_mpi_comm()
    if comm is not None:
        return comm.bcast(new_run_id(experiment) if comm.Get_rank() == 0 else None, root=0)
    raise YProvError(
        f"rank {ranks.rank} of {ranks.world_size} ({ranks.launcher}) cannot agree on a run id with the "
        f"other ranks: this launcher exports no job id. Install mpi4py (pip install 'yprov4ml[mpi]'), "
        f"pass start_run(..., run_id='...') on every rank, or set {RUN_ID_VARIABLE}."
    )


def rank_zero_only(method):
    """Run ``method`` on rank 0 only (other ranks get None): the one place where rank decides."""
    import functools

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        if self.rank != 0:
            return None
        return method(self, *args, **kwargs)

    return wrapper
