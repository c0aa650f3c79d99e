"""What a run keeps so that it can be re-run and checked: RNG states, seeding, and a copy of its code.

At start_run: a reproduction (``$YPROV4ML_REPRODUCE_OF`` names the original
run directory) first gets the original's generator states; then the states
are written to the rank's journal (an ``rng_states`` event: small, synchronous,
they must be the states of this instant; no file of their own, so that a rank
keeps to its three files), and rank 0 copies the run's code in a
background thread (``snapshot``); every rank lists its installed packages
in the background too (reading every distribution's metadata takes tens of
milliseconds), or, in a job whose ranks record, rank 0 alone lists them for all
(``shared``). At end_run: which generators were used,
which seeded, and the snapshot topped up with modules imported since.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
from pathlib import Path
from typing import Any

from ..storage.files import append_line, resolve_inside
from ..storage.layout import journal_file, located, place_in_run
from . import rng
from .shared import publish
from .snapshot import installed_roots, take_snapshot, user_files

REPRODUCE_OF = "YPROV4ML_REPRODUCE_OF"           # set by `yprov4ml reproduce --run`: the original run directory
REPRODUCTION_MARKER = "YPROV4ML_REPRODUCTION_MARKER"  # a file the new run appends "rank run_dir" to
# Where a reproduction files its run instead of the script's own save directory: beside the original's
# experiments, not among them (a re-run is no new run of the experiment, and compare must not count it).
REPRODUCTION_SAVE_DIR = "YPROV4ML_REPRODUCTION_SAVE_DIR"

SNAPSHOT_WAIT_S = 60.0
KILLED_WAIT_S = 2.0  # a killed job has seconds before SIGKILL: the record first
JOURNAL_LINES_SEARCHED = 8  # the states follow the start event closely


def reproduction_save_dir() -> str | None:
    """The save directory `yprov4ml reproduce --run` chose for the re-run, or None outside one."""
    if os.environ.get(REPRODUCE_OF):
        return os.environ.get(REPRODUCTION_SAVE_DIR) or None
    return None


def script_path() -> Path | None:
    """The user's entry script; None for ``python -c``, a REPL, or a tool's own entry point (pytest, ipykernel)."""
    script = sys.argv[0] if sys.argv and sys.argv[0] not in ("", "-c", "-m") else ""
    path = Path(script).resolve() if script else None
    if path is None or not path.is_file() or any(path.is_relative_to(root) for root in installed_roots()):
        return None
    return path


def recorded_states(run_dir: Path, rank: int) -> tuple[Any, str]:
    """(the generator states rank ``rank`` of a recorded run started from, where they were read).

    They are an ``rng_states`` event near the start of the rank's journal; runs of earlier releases kept
    them in ``rng/states.rankN.json``. Every line and file is size-checked before it is parsed.
    """
    journal = resolve_inside(run_dir, place_in_run(located(journal_file(run_dir, rank)))) if run_dir.is_dir() else None
    if journal is not None and journal.is_file():
        with open(journal, "rb") as fh:
            for _ in range(JOURNAL_LINES_SEARCHED):
                line = fh.readline(rng.MAX_STATE_BYTES + 1)
                if not line or len(line) > rng.MAX_STATE_BYTES:
                    break
                if b'"rng_states"' in line:
                    try:
                        event = json.loads(line)
                    except (ValueError, RecursionError):
                        raise ValueError(f"{journal}: its rng_states event is damaged") from None
                    if isinstance(event, dict) and event.get("event") == "rng_states":
                        return event.get("states"), str(journal)
    legacy = resolve_inside(run_dir, f"rng/states.rank{rank}.json") if run_dir.is_dir() else None
    if legacy is None or not legacy.is_file():
        raise ValueError(f"no RNG states of rank {rank} in {run_dir}")
    if legacy.stat().st_size > rng.MAX_STATE_BYTES:
        raise ValueError(f"{legacy}: {legacy.stat().st_size} bytes is too large for RNG states")
    try:
        return json.loads(legacy.read_text(encoding="utf-8")), str(legacy)
    except (ValueError, RecursionError, UnicodeDecodeError):
        raise ValueError(f"{legacy}: not yprov4ml RNG states (invalid JSON)") from None


class ReproducibilityCapture:
    """RNG states and the code snapshot of one rank's run."""

    def __init__(self, run_dir: Path, rank: int, journal: Any, exclude: list[Path],
                 keep_in_clear: frozenset[str] = frozenset(), publish_to: Path | None = None,
                 source: dict[str, Any] | None = None, lists_packages: bool = True):
        """``publish_to``: rank 0 of a job whose ranks share its capture (``capture.shared``) writes its
        package list and ``source``'s git state there; ``lists_packages`` False: a rank that takes rank 0's."""
        self.run_dir, self.rank = run_dir, rank
        self._publish_to, self._source, self._lists_packages = publish_to, source or {}, lists_packages
        self._journal = journal
        self._keep = keep_in_clear
        self._exclude = exclude
        self._script = script_path() if rank == 0 else None  # the snapshot's: rank 0 alone takes one
        self._snapshot: dict[str, Any] = {}
        self._seen_modules: set[str] = set()
        self._thread: threading.Thread | None = None
        self.facts: dict[str, Any] = {}
        self.packages: tuple[list[str], list[str]] | None = None  # (installed, from a directory), when listed

    def start(self) -> None:
        rng.watch_seeding()
        original = os.environ.get(REPRODUCE_OF)
        if original:
            self._restore_from(Path(original))
        self._start_states = rng.states()
        try:
            self._journal.write("rng_states", states=self._start_states)
            data = json.dumps(self._start_states, sort_keys=True).encode()
            self.facts.update({"rng_states": f"{place_in_run(self._journal.path)}#rng_states",
                               "rng_states_sha256": hashlib.sha256(data).hexdigest()})
        except OSError as exc:  # a full disk (ProvenanceDirError): the run goes on; a re-run starts afresh
            self.facts["rng_states_problem"] = f"not written: {exc}"
        self._thread = threading.Thread(target=self._in_background, name="yprov4ml-reproducibility", daemon=True)
        self._thread.start()
        marker = os.environ.get(REPRODUCTION_MARKER)
        if original and marker:
            append_line(marker, json.dumps({"rank": self.rank, "run_dir": str(self.run_dir)}))  # ranks: whole lines

    def _restore_from(self, original: Path) -> None:
        try:
            states, where = recorded_states(original, self.rank)
        except (ValueError, OSError) as exc:  # missing or damaged: the run goes on unrestored
            self.facts["rng_restore_problem"] = str(exc)
            return
        try:
            self.facts["rng_restored"] = rng.restore_states(states, where)
        except (ValueError, TypeError) as exc:
            self.facts["rng_restore_problem"] = f"{where}: {exc}"
            return
        self.facts["reproduction_of"] = str(original)

    def _in_background(self) -> None:
        from .environment import installed_packages, local_packages

        if self.rank == 0:  # every rank runs the same code: one copy
            self._take_snapshot()
        if self._lists_packages:
            try:
                self.packages = (installed_packages(), local_packages())
            except Exception:  # an odd installation: end_run lists them itself (and records what went wrong)
                self.packages = None
        if self._publish_to is not None:
            try:
                publish(self._publish_to, self.packages, self._source, self._source.get("script"))
            except OSError:  # a full disk: each rank captures its own
                pass

    def _take_snapshot(self) -> None:
        self._seen_modules = set(sys.modules)
        try:
            self._snapshot = take_snapshot(self.run_dir, self.rank, self._script, self._exclude, self._keep)
        except Exception as exc:  # an odd tree must not break the run; the record says what happened
            self._snapshot = {"snapshot_error": f"{type(exc).__name__}: {exc}"}

    def finish(self, wait_s: float = SNAPSHOT_WAIT_S) -> tuple[dict[str, Any], dict[str, Any]]:
        """(source facts to add, randomness facts) at end_run, waiting at most ``wait_s`` for the copy."""
        if self._thread is not None:
            self._thread.join(wait_s)
            if self.rank == 0 and "snapshot_files" in self._snapshot:
                root = Path(self._snapshot["snapshot_root"])
                copied = set(self._snapshot["snapshot_files"])
                since = [name for name in list(sys.modules) if name not in self._seen_modules]
                now = {p.relative_to(root).as_posix()
                       for p in user_files(root, None, self._exclude + [self.run_dir], since)}
                if not now <= copied:  # modules imported after start_run: take the snapshot again
                    self._take_snapshot()
        end = rng.digests(rng.states())
        start = rng.digests(self._start_states)
        used = sorted(name for name in start if end.get(name) != start[name])
        seeded = sorted(rng.seeded())
        randomness = {**self.facts, "rng_used": used, "rng_seeded": seeded}
        unseeded = [name for name in used if name not in seeded and name != "torch_cuda"]
        if unseeded:
            randomness["determinism_warning"] = (
                f"{', '.join(unseeded)} random numbers were drawn without a seed: a re-run starts from the recorded "
                "states, but what was drawn before start_run cannot be promised to repeat")
        return self._snapshot, randomness
