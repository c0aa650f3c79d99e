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

The node is named by Slurm's ``SLURMD_NODENAME`` (several slurmd may share a host), else by the host
name; its index by ``SLURM_NODEID`` (or torchrun's ``GROUP_RANK``) when the launcher says it, else it is
given by the collection, which numbers the nodes it finds in name order.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import sys
import time
from dataclasses import dataclass
from typing import Iterable, Mapping

from ..errors import YProvError


@dataclass(frozen=True)
class RankInfo:
    """This process's place in its job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    launcher: str = "none"
    job_id: str | None = None
    node: str = ""
    node_index: int | None = None


def node_of(environ: Mapping[str, str]) -> tuple[str, int | None]:
    """(node name, node index or None) of this process."""
    name = environ.get("SLURMD_NODENAME") or socket.gethostname()
    for variable in ("SLURM_NODEID", "GROUP_RANK"):
        value = environ.get(variable, "")
        if value.isdigit() and len(value) <= 7:
            return name, int(value)
    return name, None


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
    """Rank, world size, local rank and node from the launcher's environment variables."""
    env = os.environ if environ is None else environ
    return dataclasses.replace(_launcher_rank(env), **dict(zip(("node", "node_index"), node_of(env))))


def _launcher_rank(env: Mapping[str, str]) -> RankInfo:
    if "OMPI_COMM_WORLD_RANK" in env:
        job = env.get("PMIX_NAMESPACE") or env.get("OMPI_MCA_ess_base_jobid")
        return RankInfo(_int(env, "OMPI_COMM_WORLD_RANK"), _int(env, "OMPI_COMM_WORLD_SIZE", 1),
                        _int(env, "OMPI_COMM_WORLD_LOCAL_RANK"), "openmpi",
                        f"ompi-{job}" if job else _slurm_job(env))
    if "PMI_RANK" in env:
        launcher = "intelmpi" if any(k.startswith("I_MPI_") for k in env) else "mpich"
        # Hydra exports no job id; under srun --mpi=pmi2 Slurm's ids still apply.
        # Hydra says the local rank (MPI_LOCALRANKID); under srun --mpi=pmi2 Slurm does (SLURM_LOCALID)
        local = _int(env, "MPI_LOCALRANKID", _int(env, "SLURM_LOCALID"))
        return RankInfo(_int(env, "PMI_RANK"), _int(env, "PMI_SIZE", 1), local,
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


ABORT_GRACE_S = 0.5


def abort_mpi_world_after_failure() -> None:
    """After an uncaught exception on one rank of an MPI world: abort it, as ``python -m mpi4py`` does.

    Left alone, the failed rank would wait in ``MPI_Finalize`` (mpi4py's atexit)
    for ranks that wait in a collective for it: the job would hang until its
    time limit. Its document is written by then; the launcher stops the other
    ranks, whose journals ``yprov4ml recover`` turns into KILLED documents.
    Set ``YPROV4ML_MPI_ABORT=0`` to leave the decision to the program.
    """
    comm = mpi_comm()
    if comm is None or comm.Get_size() < 2 or os.environ.get("YPROV4ML_MPI_ABORT", "1") == "0":
        return
    sys.stderr.flush()
    # The launcher forwards a rank's stderr through a pipe; aborting at once can kill that relay before
    # it has passed on the traceback just written (seen with Hydra: a traceback cut after its first line).
    time.sleep(ABORT_GRACE_S)
    comm.Abort(1)


def torch_group() -> tuple[int, int] | None:
    """(rank, world size) of torch.distributed's default group, when the program has initialised it."""
    dist = sys.modules.get("torch.distributed")
    if dist is None or not dist.is_available() or not dist.is_initialized():
        return None
    try:
        return dist.get_rank(), dist.get_world_size()
    except Exception as exc:  # an initialised but broken group: guessing one rank would merge runs wrongly
        raise YProvError(f"torch.distributed is initialised but its rank cannot be read "
                         f"({type(exc).__name__}: {exc}); pass start_run(rank=..., world_size=...)") from exc


def _index(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        kind = "a positive" if minimum else "a non-negative"
        raise ValueError(f"{name} must be {kind} integer, got {value!r}")
    return value


def resolve_ranks(rank: int | None = None, world_size: int | None = None,
                  collect_all_processes: bool = False) -> RankInfo:
    """This process's place: the launcher's, MPI's or torch.distributed's, or the ``rank=``/``world_size=`` given.

    A given value that contradicts MPI's world is refused (the ranks would never
    meet); a collecting rank with ``rank=`` but no world size anywhere is refused
    too, since rank 0 could not know how many documents to wait for.
    """
    ranks = detect_rank()
    comm = mpi_comm()
    group = torch_group()
    if ranks.launcher == "none" and comm is not None and comm.Get_size() > 1:
        ranks = dataclasses.replace(ranks, rank=comm.Get_rank(), world_size=comm.Get_size(), launcher="mpi4py")
    elif group is not None and (ranks.launcher == "none" or ranks.world_size != group[1]):
        # torch.distributed knows better than partial launcher variables (Lightning's DDP launcher)
        ranks = dataclasses.replace(ranks, rank=group[0], world_size=group[1], launcher="torch.distributed",
                                    local_rank=int(os.environ.get("LOCAL_RANK", group[0])), job_id=None)
    if rank is None and world_size is None:
        return ranks
    rank = ranks.rank if rank is None else _index("rank", rank, 0)
    known = ranks.launcher != "none"
    if world_size is None:
        if not known and rank > 0 and collect_all_processes:
            raise ValueError(f"start_run(rank={rank}) with collect_all_processes=True needs world_size=: no launcher "
                             "says how many ranks there are, so rank 0 could not know which documents to collect")
        world_size = ranks.world_size if known else rank + 1  # a lower bound, only recorded: nothing waits on it
    world_size = _index("world_size", world_size, 1)
    if rank >= world_size:
        raise ValueError(f"rank {rank} does not exist in a world of {world_size} rank(s)")
    if comm is not None and comm.Get_size() > 1 and (comm.Get_size(), comm.Get_rank()) != (world_size, rank):
        raise ValueError(f"start_run(rank={rank}, world_size={world_size}) contradicts MPI, where this process is "
                         f"rank {comm.Get_rank()} of {comm.Get_size()}; leave them out under mpiexec/srun")
    return dataclasses.replace(ranks, rank=rank, world_size=world_size)


def missing_ranks(world_size: int, present: Iterable[int], most: int = 64) -> tuple[int, list[int]]:
    """How many of ranks ``0..world_size-1`` are absent from ``present``, and the first ``most`` of them.

    Nothing is sized by ``world_size`` (a figure read from a file): the walk
    stops once ``most`` absent ranks are found.
    """
    have = {r for r in present if isinstance(r, int) and 0 <= r < world_size}
    first = []
    rank = 0
    while rank < world_size and len(first) < most:
        if rank not in have:
            first.append(rank)
        rank += 1
    return world_size - len(have), first
