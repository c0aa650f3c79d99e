"""How the ranks of a run end together: each reports to rank 0, rank 0 collects and says when it is done.

Through MPI (mpi4py) or torch.distributed's store when the program initialised one of them (under torchrun,
its agent's store even without a process group) — rank 0 then learns every rank's document digest and
status without touching the shared file system — else by
polling the run directory (``collection.wait_for_ranks``). Every wait has a timeout: a rank that died
never reports, and rank 0 lists it as missing instead of hanging; MPI's collectives cannot time out, so
only non-blocking point-to-point messages (and the store's keys) are used, with tags of their own.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Protocol

from ..errors import YProvError
from .polling import backing_off
from .ranks import detect_rank, mpi_comm, torch_group
from .torchrun import agent_store

REPORT_TAG = 0x7970  # "yp": the reports of the ranks to rank 0
DONE_TAG = 0x7971  # rank 0 to the others: the collection is written
POLL_S = 0.02
POLL_MOST_S = 1.0
SEND_WAIT_S = 1.0


class Coordinator(Protocol):
    """The channel between the ranks of one run."""

    name: str

    def send_report(self, report: dict[str, Any]) -> None:
        """A rank other than 0: hand rank 0 this rank's report (without waiting for it)."""

    def gather_reports(self, world_size: int, timeout_s: float) -> dict[int, dict[str, Any]]:
        """Rank 0: the reports of ranks 1..world_size-1 that arrive within ``timeout_s``."""

    def announce_collected(self, world_size: int) -> None:
        """Rank 0: tell the other ranks that the collection is written."""

    def wait_collected(self, timeout_s: float) -> bool:
        """A rank other than 0: wait for rank 0's word (False after ``timeout_s``)."""


def _withdraw(request: Any) -> None:
    """Cancel a receive that nobody will match (a dead or late rank) and release it."""
    request.Cancel()
    request.Wait()  # a cancelled request completes at once (the plain Wait: nothing to unpickle)


def _until(timeout_s: float, pending: dict, test: Any) -> None:
    for _ in backing_off(timeout_s, POLL_S, POLL_MOST_S):  # every rank polls rank 0's store
        for key in list(pending):
            if test(key, pending[key]):
                del pending[key]
        if not pending:
            return


class MpiCoordinator:
    """Non-blocking point-to-point messages on MPI's world (no collective: a dead rank cannot hang them)."""

    name = "mpi"

    def __init__(self, comm: Any):
        self.comm = comm
        self._sent: list[Any] = []

    def send_report(self, report: dict[str, Any]) -> None:
        self._sent.append(self.comm.isend(report, dest=0, tag=REPORT_TAG))

    def gather_reports(self, world_size: int, timeout_s: float) -> dict[int, dict[str, Any]]:
        found: dict[int, dict[str, Any]] = {}
        pending = {rank: self.comm.irecv(source=rank, tag=REPORT_TAG) for rank in range(1, world_size)}

        def test(rank: int, request: Any) -> bool:
            done, report = request.test()
            if done and isinstance(report, dict):
                found[rank] = report
            return done

        _until(timeout_s, pending, test)
        for request in pending.values():  # the ranks that never reported
            _withdraw(request)
        return found

    def announce_collected(self, world_size: int) -> None:
        self._sent += [self.comm.isend(True, dest=rank, tag=DONE_TAG) for rank in range(1, world_size)]
        self._complete_sends()

    def wait_collected(self, timeout_s: float) -> bool:
        self._complete_sends()
        request = self.comm.irecv(source=0, tag=DONE_TAG)
        pending = {0: request}
        _until(timeout_s, pending, lambda _, r: r.test()[0])
        if pending:
            _withdraw(request)
        return not pending

    def _complete_sends(self) -> None:
        """Small messages leave at once; a send still under way (its receiver gone) is let go, not waited for."""
        pending = dict(enumerate(self._sent))
        _until(SEND_WAIT_S, pending, lambda _, r: r.Test())
        for request in pending.values():
            request.Free()
        self._sent = []


class StoreCoordinator:
    """torch.distributed's key-value store (the one its process group was set up with): keys, no collective."""

    name = "torch.distributed"

    def __init__(self, store: Any, run_id: str):
        self.store = store
        self.prefix = f"yprov4ml/{run_id}/"

    def send_report(self, report: dict[str, Any]) -> None:
        self.store.set(f"{self.prefix}report/{report['rank']}", json.dumps(report))

    def gather_reports(self, world_size: int, timeout_s: float) -> dict[int, dict[str, Any]]:
        found: dict[int, dict[str, Any]] = {}
        pending = {rank: f"{self.prefix}report/{rank}" for rank in range(1, world_size)}

        def test(rank: int, key: str) -> bool:
            if not self.store.check([key]):
                return False
            try:
                found[rank] = json.loads(self.store.get(key))
            except ValueError:  # not ours: the rank is listed as missing
                pass
            return True

        _until(timeout_s, pending, test)
        return found

    def announce_collected(self, world_size: int) -> None:
        self.store.set(f"{self.prefix}collected", "1")

    def wait_collected(self, timeout_s: float) -> bool:
        pending = {0: f"{self.prefix}collected"}
        _until(timeout_s, pending, lambda _, key: self.store.check([key]))
        return not pending


def coordinator(run_id: str, world_size: int) -> Coordinator | None:
    """The channel the program set up, if any: MPI's world of ``world_size`` ranks, or torch.distributed's
    store; None means polling the shared run directory."""
    comm = mpi_comm()
    if comm is not None and comm.Get_size() == world_size:
        return MpiCoordinator(comm)
    group = torch_group()
    if group is not None and group[1] == world_size:
        try:
            store = sys.modules["torch.distributed"].distributed_c10d._get_default_store()
        except Exception:  # a backend without a store: the file system it is
            return None
        return StoreCoordinator(store, run_id)
    if detect_rank().launcher == "torchrun":  # no process group (yet, or any more): torchrun's own store
        try:
            store = agent_store()
        except YProvError:  # the agent is gone: the file system still works
            return None
        if store is not None:
            return StoreCoordinator(store, run_id)
    return None
