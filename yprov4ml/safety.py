"""Ending the active run when the process ends some other way than end_run.

* SIGTERM (Slurm's time limit, ``scancel``) and SIGINT (Ctrl-C): flush and write
  the PROV-JSON with status KILLED, then let the signal take its usual effect —
  the previous handler is called, or the default action re-raised.
* An uncaught exception: status FAILED with the error, then the previous
  ``sys.excepthook``.
* Interpreter exit with the run still active (a script that forgot
  ``end_run``): status FINISHED, noted as ended at exit.

Handlers are installed by ``start_run`` and removed by ``end_run``; signal
handlers only from the main thread (Python allows no other).
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
from types import FrameType
from typing import Any, Callable

_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_previous: dict[int, Any] = {}
_finish: Callable[[str, str | None], None] | None = None
_previous_excepthook: Callable[..., Any] | None = None
_atexit_registered = False


def install(finish: Callable[[str, str | None], None]) -> None:
    """Route signals, uncaught exceptions and exit to ``finish(status, error)`` while a run is active."""
    global _finish, _previous_excepthook, _atexit_registered
    _finish = finish
    if threading.current_thread() is threading.main_thread():
        for signum in _SIGNALS:
            if signum not in _previous:
                _previous[signum] = signal.getsignal(signum)
                signal.signal(signum, _on_signal)
    if _previous_excepthook is None:
        _previous_excepthook = sys.excepthook
        sys.excepthook = _on_uncaught
    if not _atexit_registered:
        atexit.register(_on_exit)
        _atexit_registered = True


def uninstall() -> None:
    """Put back the handlers that were there before ``start_run``."""
    global _finish, _previous_excepthook
    _finish = None
    if threading.current_thread() is threading.main_thread():
        for signum, handler in list(_previous.items()):
            if signal.getsignal(signum) is _on_signal:
                signal.signal(signum, handler)
            del _previous[signum]
    if _previous_excepthook is not None and sys.excepthook is _on_uncaught:
        sys.excepthook = _previous_excepthook
        _previous_excepthook = None


def _end(status: str, error: str | None) -> None:
    from .errors import RunNotActiveError

    finish = _finish
    if finish is not None:
        try:
            finish(status, error)
        except RunNotActiveError:
            pass  # end_run was already under way: its own write stands
        except Exception as exc:  # the process is going down anyway: say why the record may be partial
            print(f"yprov4ml: could not finish the run ({status}): {exc}", file=sys.stderr)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    previous = _previous.get(signum, signal.SIG_DFL)
    _end("KILLED", f"signal {signal.Signals(signum).name}")
    uninstall()
    if callable(previous):
        previous(signum, frame)  # user / framework handler; SIGINT's default raises KeyboardInterrupt
    elif previous == signal.SIG_DFL:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)  # the usual effect: terminate by this signal


def _on_uncaught(exc_type: type, exc: BaseException, tb: Any) -> None:
    from .run import outcome

    hook = _previous_excepthook or sys.__excepthook__
    _end(*outcome(exc))
    hook(exc_type, exc, tb)


def _on_exit() -> None:
    _end("FINISHED", "end_run was not called: the run was ended at interpreter exit")
