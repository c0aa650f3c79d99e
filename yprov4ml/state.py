"""Process-wide state: the active run, the lock that guards it, and ending it from outside the user's code.

``api`` starts runs and reads the active one; ``Run.end`` releases it (so a run
ended directly, ``run.end()``, is no longer active and its handlers are gone);
``safety`` ends it on a signal, an uncaught exception or interpreter exit.
A forked child inherits none of it: its copy of the run refuses every
directive and never finishes the parent's run.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Protocol

from . import safety
from .distributed import sentinel
from .distributed.ranks import abort_mpi_world_after_failure
from .errors import RunNotActiveError


class ActiveRun(Protocol):
    """What the process state needs of a run (``Run`` or ``NoOpRun``)."""

    run_id: str
    pid: int  # the process that records it

    def end(self, create_graph: bool = False, create_svg: bool = False, *, status: str = ...,
            error: str | None = ...) -> Any: ...

    def wait_ended(self, timeout_s: float) -> bool: ...

    def detach_after_fork(self) -> None: ...


_active: ActiveRun | None = None
lock = threading.Lock()
runs_started = 0
ENDING_WAIT_S = 60.0  # how long an outside end waits for an end already under way (end_run, another signal)


def active() -> ActiveRun | None:
    """The run this process is recording, or None."""
    return _active


def activate(run: ActiveRun) -> None:
    """Make ``run`` the active run and route signals, uncaught exceptions and exit to it. Hold ``lock``."""
    global _active, runs_started
    _active = run
    runs_started += 1
    safety.install(lambda status, error, on_signal=False: end_from_outside(run, status, error, on_signal),
                   after_failure=abort_mpi_world_after_failure)


class Terminating:
    """Stands in for a run that a signal is ending: the training loop's last calls are dropped quietly.

    The process dies by the signal as soon as the document is written; until
    then the loop runs on, and an error raised into it would only replace the
    signal's exit with a traceback.
    """

    is_active = False

    def __init__(self, run: ActiveRun):
        self.ending, self.run_id, self.pid = run, run.run_id, run.pid

    def __getattr__(self, name: str) -> Any:
        return _drop

    def __repr__(self) -> str:
        return f"<yprov4ml run {self.run_id}: ending on a signal>"


def _drop(*args: Any, **kwargs: Any) -> None:
    return None


def release(run: ActiveRun) -> None:
    """Called once ``run`` has ended, however it was ended: it is no longer the active run."""
    global _active
    with lock:
        if _active is run:
            _active = None
            safety.uninstall()
        elif getattr(_active, "ending", None) is run:
            safety.uninstall()  # the stand-in stays until the signal ends the process, a moment from now


def end_from_outside(run: ActiveRun, status: str, error: str | None, on_signal: bool = False) -> None:
    """End ``run`` for a signal, an uncaught exception or exit; wait instead if it is already ending."""
    global _active
    if os.getpid() != run.pid:
        return  # a forked child: the run belongs to its parent
    if on_signal and _active is run:
        _active = Terminating(run)  # one reference swap: no lock needed, none taken
    try:
        run.end(status=status, error=error)
    except RunNotActiveError:
        run.wait_ended(ENDING_WAIT_S)  # end_run (or another signal) is writing it: let it finish


def _after_fork_in_child() -> None:
    # No lock may be taken here: another thread of the parent may have held it at fork time.
    run = _active
    safety.reset_after_fork()
    sentinel.forget_after_fork()
    if run is not None:
        run.detach_after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)
