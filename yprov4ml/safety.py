"""Ending the active run when the process ends some other way than end_run.

* SIGTERM (Slurm's time limit, ``scancel``) and SIGINT with their default
  action: the signal number reaches a pipe — written by Python's C-level
  handler (the signal wake-up fd), so even a main thread stuck in an MPI call
  is no obstacle, or else by our handler, which only writes that byte and
  returns. No lock is taken, so none held by the interrupted code can
  deadlock. A finisher thread reads the pipe, ends the run with status KILLED
  (flush, PROV-JSON) and lets the signal take its usual effect; what the
  training loop logs after the signal, while the document is written, is
  dropped. A second signal while it works takes the default action at once.
* SIGINT with Python's handler (KeyboardInterrupt): the exception is raised as
  usual and the run ends as the program unwinds (KILLED, "KeyboardInterrupt").
* A handler of the user's or a framework's own: it is called unchanged; a run
  that then reaches interpreter exit without end_run is recorded as KILLED by that signal.
* An ignored signal (``nohup``, ``trap '' INT``) stays ignored.
* An uncaught exception: status FAILED with the error, then the previous
  ``sys.excepthook``; on one rank of an MPI world, the world is then aborted
  (``distributed.ranks.abort_mpi_world_after_failure``) instead of hanging.
* Interpreter exit with the run still active: status FINISHED, noted as ended at exit.

Handlers are installed by ``start_run`` and removed when the run ends; signal
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
_end: Callable[..., None] | None = None
_after_failure: Callable[[], None] | None = None
_previous_excepthook: Callable[..., Any] | None = None
_atexit_registered = False
_pipe: tuple[int, int] | None = None
_finisher: threading.Thread | None = None
_dies_by: set[int] = set()  # signals our handler took over from their default action (kept: a late byte counts)
_handler_calls = 0  # Python-level calls of our handler for default-action signals since install
_wakeup_claimed = False  # our pipe is Python's signal wake-up fd
_received: str | None = None  # a signal passed on to the user's own handler


def outcome(exc: BaseException | None) -> tuple[str, str | None]:
    """The status (and error text) a run ends with, given the exception that ended it."""
    if exc is None:
        return "FINISHED", None
    if isinstance(exc, SystemExit) and exc.code in (0, None):
        return "FINISHED", None
    if isinstance(exc, KeyboardInterrupt):
        return "KILLED", "KeyboardInterrupt (signal SIGINT)"
    return "FAILED", f"{type(exc).__name__}: {exc}"


def install(end: Callable[..., None], after_failure: Callable[[], None] | None = None) -> None:
    """Route signals, uncaught exceptions and exit to ``end(status, error, on_signal=...)`` while a run is active.

    ``after_failure`` runs once an uncaught exception has ended the run and its traceback is printed.
    """
    global _end, _after_failure, _previous_excepthook, _atexit_registered, _received, _handler_calls
    _end, _after_failure, _received, _handler_calls = end, after_failure, None, 0
    if threading.current_thread() is threading.main_thread():
        for signum in _SIGNALS:
            current = signal.getsignal(signum)
            if signum in _previous or current in (signal.SIG_IGN, None):
                continue  # ignored (or set outside Python): leave it so
            _start_finisher()
            _previous[signum] = current
            if current == signal.SIG_DFL:
                _dies_by.add(signum)
            signal.signal(signum, _on_signal)
        _claim_wakeup_fd()
    if _previous_excepthook is None:
        _previous_excepthook = sys.excepthook
        sys.excepthook = _on_uncaught
    if not _atexit_registered:
        atexit.register(_on_exit)
        _atexit_registered = True


def uninstall() -> None:
    """Put back the handlers that were there before ``start_run``."""
    global _end, _previous_excepthook, _wakeup_claimed
    _end = None
    if threading.current_thread() is threading.main_thread():
        for signum, handler in list(_previous.items()):
            if signal.getsignal(signum) is _on_signal:
                signal.signal(signum, handler)
            del _previous[signum]
        if _wakeup_claimed:
            signal.set_wakeup_fd(-1)
            _wakeup_claimed = False
    if _previous_excepthook is not None and sys.excepthook is _on_uncaught:
        sys.excepthook = _previous_excepthook
        _previous_excepthook = None


def reset_after_fork() -> None:
    """In a forked child: forget the parent's run, put the handlers back (no lock taken)."""
    global _end, _pipe, _finisher, _wakeup_claimed
    _end, _finisher = None, None
    _dies_by.clear()
    try:
        if _wakeup_claimed:
            signal.set_wakeup_fd(-1)
        uninstall()
    except Exception:  # a child that is not its interpreter's main thread: handlers are inert anyway
        _previous.clear()
    _wakeup_claimed = False
    if _pipe is not None:  # the parent's pipe: its finisher, not ours
        for fd in _pipe:
            try:
                os.close(fd)
            except OSError:
                pass
        _pipe = None


def _start_finisher() -> None:
    global _pipe, _finisher
    if _finisher is not None:
        return
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)  # a handler never blocks, even on a full pipe
    _pipe = (read_end, write_end)
    _finisher = threading.Thread(target=_finish_on_signal, args=(read_end,), name="yprov4ml-signal", daemon=True)
    _finisher.start()


def _claim_wakeup_fd() -> None:
    """Let Python's C-level handler write the signal number to our pipe at once.

    The finisher then ends the run even while the main thread is stuck in C
    code (an MPI collective, a blocking read) and cannot run Python handlers.
    An event loop that holds the wake-up fd keeps it; our handler writes then.
    """
    global _wakeup_claimed
    if _pipe is None or _wakeup_claimed:
        return
    previous = signal.set_wakeup_fd(_pipe[1], warn_on_full_buffer=False)
    if previous != -1:
        signal.set_wakeup_fd(previous)
    else:
        _wakeup_claimed = True


def _on_signal(signum: int, frame: FrameType | None) -> None:
    """Flag and return: no lock, no I/O beyond one byte to a pipe."""
    global _received, _handler_calls
    previous = _previous.get(signum, signal.SIG_DFL)
    if callable(previous):
        if previous is not signal.default_int_handler:
            _received = signal.Signals(signum).name
        previous(signum, frame)  # KeyboardInterrupt, or the user's / framework's own handler
        return
    _handler_calls += 1
    if _handler_calls > 1 or _pipe is None:  # a second signal while the run is written: give up waiting
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    if not _wakeup_claimed:  # otherwise the C-level handler has written the byte already
        try:
            os.write(_pipe[1], bytes([signum]))
        except OSError:
            pass


def _finish_on_signal(read_end: int) -> None:
    while True:
        try:
            data = os.read(read_end, 1)
        except OSError:
            return
        if not data:
            return
        signum = data[0]
        current = signal.getsignal(signum)
        if signum not in _dies_by or (callable(current) and current is not _on_signal):
            # Someone's own handler has it (the wake-up fd reports every signal Python handles). A default
            # action restored since (end_run racing the signal) still counts: Python would drop that signal.
            continue
        end = _end
        if end is not None:
            try:
                end("KILLED", f"signal {signal.Signals(signum).name}", on_signal=True)
            except Exception as exc:  # the process is going down anyway: say why the record may be partial
                print(f"yprov4ml: could not finish the run (KILLED): {exc}", file=sys.stderr)
        _terminate(signum)  # the usual effect of a signal left at its default action


def _terminate(signum: int) -> None:
    """Die by ``signum`` with its default action, from any thread.

    ``signal.signal`` works only in the main thread, which is busy with the
    user's code; the C-level ``signal()`` sets the default action from here.
    """
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.signal.restype = ctypes.c_void_p
    libc.signal(signum, ctypes.c_void_p(0))  # SIG_DFL at the C level: Python's handler no longer runs
    os.kill(os.getpid(), signum)


def _call_end(status: str, error: str | None) -> None:
    end = _end
    if end is None:
        return
    try:
        end(status, error)
    except Exception as exc:  # the process is going down anyway: say why the record may be partial
        print(f"yprov4ml: could not finish the run ({status}): {exc}", file=sys.stderr)


def _on_uncaught(exc_type: type, exc: BaseException, tb: Any) -> None:
    hook = _previous_excepthook or sys.__excepthook__
    status, error = outcome(exc)
    after = _after_failure
    _call_end(status, error)
    if issubclass(exc_type, KeyboardInterrupt):
        _mark_keyboard_interrupt_unhandled()
    hook(exc_type, exc, tb)
    if status == "FAILED" and after is not None:
        after()


def after_if_uncaught(exc: BaseException, after: Callable[[], None]) -> None:
    """``after()`` once the traceback is printed, should ``exc`` — which just ended a run as it left the
    run's ``with`` block, taking the run's own hook along — end the program uncaught.

    Without it, a failed rank of an MPI world would wait in ``MPI_Finalize`` for ranks that wait in a
    collective for it. An exception the program catches never reaches the hook: nothing happens.
    """
    previous = sys.excepthook

    def hook(exc_type: type, value: BaseException, tb: Any) -> None:
        sys.excepthook = previous
        previous(exc_type, value, tb)
        if value is exc:
            after()

    sys.excepthook = hook


def _mark_keyboard_interrupt_unhandled() -> None:
    """Keep Python's exit by SIGINT after an unhandled KeyboardInterrupt (exit status 130 / -2).

    CPython notes the unhandled KeyboardInterrupt when the main module stops,
    and any ``exec`` of source text afterwards — a dataclass or namedtuple in a
    module that ending the run imports — clears that note; evaluating code that
    raises KeyboardInterrupt sets it again.
    """
    try:
        exec("raise KeyboardInterrupt")
    except KeyboardInterrupt:
        pass


def _on_exit() -> None:
    if _received:
        _call_end("KILLED", f"signal {_received} (handled by the program's own handler), then exit "
                            "without end_run")
    else:
        _call_end("FINISHED", "end_run was not called: the run was ended at interpreter exit")
