"""The run id every rank of a job agrees on: from the user, the launcher's job id, or a broadcast."""

from __future__ import annotations

import os
import uuid
from datetime import datetime, timezone
from typing import Mapping

from ..errors import YProvError
from ..storage.names import safe_part
from .ranks import RankInfo, mpi_comm, torch_group

RUN_ID_VARIABLE = "YPROV4ML_RUN_ID"


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
    return f"{safe_part(experiment)}-{stamp}-{uuid.uuid4().hex[:8]}"


def agree_run_id(experiment: str, ranks: RankInfo, explicit: str | None, sequence: int,
                 environ: Mapping[str, str] | None = None) -> str:
    """The run id every rank of the job computes identically (never guessed from the file system).

    ``sequence`` counts the runs started earlier in this process, so that a job
    that starts several runs gets one id per run.
    """
    env = os.environ if environ is None else environ
    given = explicit or env.get(RUN_ID_VARIABLE)
    if given:
        return safe_part(given) + (f"-{sequence}" if sequence and not explicit else "")
    if ranks.world_size <= 1 and mpi_comm() is None:
        return new_run_id(experiment)
    if ranks.job_id:
        return f"{safe_part(experiment)}-{safe_part(ranks.job_id)}" + (f"-{sequence}" if sequence else "")
    if torch_group() is not None:  # torch.distributed (Lightning DDP, torchrun): rank 0 decides
        return _torch_broadcast(new_run_id(experiment) if ranks.rank == 0 else None)
    comm = mpi_comm() or _import_mpi_comm()
    if comm is not None and comm.Get_size() == ranks.world_size:
        return comm.bcast(new_run_id(experiment) if comm.Get_rank() == 0 else None, root=0)
    if comm is not None:  # rank= / world_size= given without a launcher: MPI is a world of its own
        raise YProvError(
            f"rank {ranks.rank} of {ranks.world_size} was given, but no launcher started the ranks together "
            f"(MPI's world here has {comm.Get_size()} process): they cannot agree on a run id by themselves. "
            f"Pass the same start_run(..., run_id='...') on every rank, or set {RUN_ID_VARIABLE}."
        )
    raise YProvError(
        f"rank {ranks.rank} of {ranks.world_size} ({ranks.launcher}) cannot agree on a run id with the "
        f"other ranks: this launcher exports no job id. Install mpi4py (pip install 'yprov4ml[mpi]'), "
        f"pass start_run(..., run_id='...') on every rank, or set {RUN_ID_VARIABLE}."
    )
