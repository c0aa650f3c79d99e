"""The run id every rank of a job agrees on: from the user, the launcher's job id, torchrun's agent store,
or a broadcast; and, for a restarted job, which attempt of that run this is (``attempts``)."""

from __future__ import annotations

import os
import uuid
from datetime import datetime, timezone
from typing import Any, Mapping

from ..errors import YProvError
from ..storage.names import safe_part
from .attempts import RunIdentity, identity, restart_count
from .polling import backing_off
from .ranks import RankInfo, mpi_comm, torch_group
from .torchrun import agent_store, agreed_value

RUN_ID_VARIABLE = "YPROV4ML_RUN_ID"


def _torch_broadcast(value: str | None) -> str:
    import torch.distributed as dist

    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


BROADCAST_BYTES = 512  # a run id is at most ~230 ASCII characters (storage.names.MAX_IDENTITY + a stamp)


def _mpi_broadcast(comm: Any, value: str | None, timeout_s: float) -> str:
    """Rank 0's ``value`` on every rank, or a clear error after ``timeout_s`` (a blocking bcast waits forever
    for a rank 0 that died or never calls start_run): a non-blocking broadcast of a fixed-size buffer."""
    buffer = bytearray(BROADCAST_BYTES)
    if comm.Get_rank() == 0:
        data = (value or "").encode()
        buffer[:len(data)] = data
    request = comm.Ibcast(buffer, root=0)
    if not any(request.Test() for _ in backing_off(timeout_s, 0.001, 0.05)):  # thousands of ranks wait here
        raise YProvError(
            f"rank {comm.Get_rank()} of {comm.Get_size()}: rank 0 sent no run id within {timeout_s:g} s "
            "(start_run agrees on it over MPI): rank 0 died, or does not call start_run. Pass the same "
            f"start_run(..., run_id='...') on every rank, or set {RUN_ID_VARIABLE}, to agree without MPI."
        )
    return bytes(buffer).rstrip(b"\0").decode()


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
    """The run id every rank of the job computes identically (see ``agree_run_identity``)."""
    return agree_run_identity(experiment, ranks, explicit, sequence, environ).run_id


def agree_run_identity(experiment: str, ranks: RankInfo, explicit: str | None, sequence: int,
                       environ: Mapping[str, str] | None = None, timeout_s: float | None = None) -> RunIdentity:
    """The run id every rank of the job computes identically (never guessed from the file system), and the
    attempt: a job its launcher restarted records a new attempt of the same run.

    ``sequence`` counts the runs started earlier in this process, so that a job
    that starts several runs gets one id per run; a broadcast over MPI waits at most ``timeout_s``
    (default: the collection timeout).
    """
    env = os.environ if environ is None else environ
    base, lasting = _shared_base_id(experiment, ranks, explicit, sequence, env, timeout_s)
    # an id drawn afresh (a lone process, a broadcast) names no earlier attempt: it is the first of its run
    return identity(base, restart_count(env)) if lasting else RunIdentity(base)


def _shared_base_id(experiment: str, ranks: RankInfo, explicit: str | None, sequence: int,
                    env: Mapping[str, str], timeout_s: float | None) -> tuple[str, bool]:
    """The id all ranks of the job share, and whether a restart of the job gets it again."""
    suffix = f"-{sequence}" if sequence else ""
    given = explicit or env.get(RUN_ID_VARIABLE)
    if given:
        return safe_part(given) + (suffix if not explicit else ""), True
    if ranks.world_size <= 1 and mpi_comm() is None:
        return new_run_id(experiment), False
    if ranks.job_id:
        return f"{safe_part(experiment)}-{safe_part(ranks.job_id)}{suffix}", True
    store = agent_store(env) if ranks.launcher == "torchrun" else None
    if store is not None:  # torchrun without a rendezvous id: its store holds one id for every attempt
        return agreed_value(store, f"yprov4ml/run-id/{sequence}", new_run_id(experiment)), True
    if torch_group() is not None:  # torch.distributed (Lightning DDP): rank 0 decides
        return _torch_broadcast(new_run_id(experiment) if ranks.rank == 0 else None), False
    if ranks.launcher == "torchrun":
        raise YProvError(
            f"rank {ranks.rank} of {ranks.world_size} (torchrun) cannot agree on a run id with the other "
            "workers: torchrun gave no rendezvous id and no agent store, and torch.distributed is not "
            "initialised yet. Call start_run after torch.distributed.init_process_group(), run torchrun with "
            f"--rdzv-id (or --standalone), or pass start_run(..., run_id='...') / set {RUN_ID_VARIABLE}."
        )
    comm = mpi_comm() or _import_mpi_comm()
    if comm is not None and comm.Get_size() == ranks.world_size:
        from .collection import collection_timeout  # here: the collection needs prov, `import yprov4ml` must not

        return _mpi_broadcast(comm, new_run_id(experiment) if comm.Get_rank() == 0 else None,
                              collection_timeout(timeout_s)), False
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
