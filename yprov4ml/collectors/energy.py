"""Energy and emissions through codecarbon's offline tracker: started in the background, once per process.

Starting codecarbon takes about 1.5 s; it happens in a thread of its own — at start_run with
``start_run(track_energy=True)``, else at the first ``log_carbon_metrics`` — so that training never waits
for it. What is asked while it starts is answered once it is up (``when_ready``).

The online tracker calls web services; the offline one needs a country code
(``YPROV4ML_COUNTRY`` or ``start_run(energy_country=...)``, default ``USA``,
codecarbon's own fallback grid mix) and makes no network call.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

log = logging.getLogger("yprov4ml")

DEFAULT_COUNTRY = "USA"
COUNTRY_VARIABLE = "YPROV4ML_COUNTRY"
START_TIMEOUT_S = 10.0  # end_run waits this long, at most, for a tracker still starting
MAX_WAITING = 1000  # requests kept while it starts (each is one point, answered once it is up)

# (figure name, EmissionsData attribute, unit)
FIGURES = (
    ("emissions_kg", "emissions", "kgCO2eq"),
    ("energy_consumed_kwh", "energy_consumed", "kWh"),
    ("cpu_energy_kwh", "cpu_energy", "kWh"),
    ("gpu_energy_kwh", "gpu_energy", "kWh"),
    ("ram_energy_kwh", "ram_energy", "kWh"),
    ("cpu_power_w", "cpu_power", "W"),
    ("gpu_power_w", "gpu_power", "W"),
    ("ram_power_w", "ram_power", "W"),
)
# The cumulative figures, kept on the run activity as ``total_<name>`` at end_run.
TOTALS = ("emissions_kg", "energy_consumed_kwh", "cpu_energy_kwh", "gpu_energy_kwh", "ram_energy_kwh")


def summed_totals(runs: Any) -> dict[str, float]:
    """``total_<name>`` summed over run activities' attributes (the ranks of a run, the runs of a task)."""
    sums: dict[str, float] = {}
    for run in runs:
        for name in (f"total_{figure}" for figure in TOTALS):
            value = run.get(name)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                sums[name] = sums.get(name, 0.0) + float(value)
    return sums


class EnergyTracker:
    """One codecarbon tracker for this process; every failure becomes ``unavailable`` (a reason)."""

    def __init__(self, country: str | None = None, start_timeout_s: float = START_TIMEOUT_S):
        given = country or os.environ.get(COUNTRY_VARIABLE)
        self.country = (given or DEFAULT_COUNTRY).upper()
        # Emissions depend on the grid's mix: a figure computed for a country nobody chose says so.
        self.country_source = ("start_run(energy_country=...)" if country else f"${COUNTRY_VARIABLE}" if given
                               else "default")
        self.unavailable: str | None = None
        self._timeout = start_timeout_s
        self._tracker: Any = None
        self._latest: Any = None
        self._ready = threading.Event()
        self._starter: threading.Thread | None = None
        self._lock = threading.Lock()
        self._waiting: list[Any] = []  # what calls made while it starts asked for: made once it is up
        self._answered = False  # the starter has taken the waiting requests: later ones are made at once

    @property
    def ready(self) -> bool:
        """Whether codecarbon is up (or known to be unavailable); starts it in the background if not yet."""
        self.start()
        return self._ready.is_set()

    def start(self) -> None:
        """Start codecarbon in a thread of its own (once)."""
        with self._lock:
            if self._starter is None:
                if self.country_source == "default":
                    log.warning("yprov4ml: emissions are computed for the grid of %s, the default: no country "
                                "was given (set $%s or start_run(energy_country=...), ISO 3166 alpha-3)",
                                DEFAULT_COUNTRY, COUNTRY_VARIABLE)
                self._starter = threading.Thread(target=self._start_then_answer, name="yprov4ml-codecarbon",
                                                 daemon=True)
                self._starter.start()

    def when_ready(self, call: Any) -> bool:
        """Have ``call()`` made as soon as codecarbon is up, in the order asked; False (and not kept) past
        MAX_WAITING requests, should codecarbon hang."""
        with self._lock:
            if not self._answered:
                if len(self._waiting) >= MAX_WAITING:
                    return False
                self._waiting.append(call)
                return True
        call()  # it came up in between
        return True

    def settle(self) -> None:
        """Wait (at most the start timeout) until codecarbon is up and the waiting request is answered."""
        starter = self._starter
        if starter is not None:
            starter.join(self._timeout)

    def _start_then_answer(self) -> None:
        self._start()
        with self._lock:
            calls, self._waiting, self._answered = self._waiting, [], True
        for call in calls:
            call()

    def _start(self) -> None:
        try:
            from codecarbon import OfflineEmissionsTracker
            from codecarbon.output_methods.base_output import BaseOutput
        except ImportError:
            self.unavailable = "codecarbon is not installed (pip install 'yprov4ml[energy]')"
            self._ready.set()
            return
        # codecarbon logs INFO lines at construction, before log_level applies.
        logging.getLogger("codecarbon").setLevel(logging.ERROR)
        owner = self

        class _Capture(BaseOutput):  # codecarbon's extension point: receives each flush
            def out(self, total: Any, delta: Any) -> None:
                owner._latest = total

            def live_out(self, total: Any, delta: Any) -> None:
                owner._latest = total

        try:
            tracker = OfflineEmissionsTracker(
                country_iso_code=self.country, output_methods=[], output_handlers=[_Capture()],
                log_level="error", allow_multiple_runs=True, measure_power_secs=15,
            )
            tracker.start()
            self._tracker = tracker
        except Exception as exc:
            self.unavailable = f"codecarbon failed to start: {type(exc).__name__}: {exc}"
        self._ready.set()

    def wait_started(self) -> bool:
        """Whether the tracker is up, waiting at most the start timeout (end_run's totals; not training)."""
        self.start()
        if not self._ready.wait(self._timeout):
            log.warning("yprov4ml: codecarbon did not start within %.0f s; no energy totals", self._timeout)
            self.unavailable = self.unavailable or f"codecarbon did not start within {self._timeout:.0f} s"
            return False
        return self._tracker is not None

    def measure(self) -> list[tuple[str, float, str]]:
        """Cumulative energy and emissions since the tracker started, and current power ([] while it starts)."""
        if not self._ready.is_set() or self._tracker is None:
            return []
        try:
            self._tracker.flush()
        except Exception as exc:  # a collector must never break the training loop
            self.unavailable = f"codecarbon failed to measure: {type(exc).__name__}: {exc}"
            return []
        data = self._latest
        if data is None:
            return []
        # Absent, not zero: a figure codecarbon could not measure is left out, like the GPU collector's.
        return [(name, float(value), unit) for name, attr, unit in FIGURES
                if isinstance(value := getattr(data, attr, None), (int, float)) and not isinstance(value, bool)]

    def totals(self) -> dict[str, Any]:
        """The run-level figures for the PROV run activity (after a final measurement)."""
        figures = {name: value for name, value, _ in self.measure()} if self.wait_started() else {}
        out: dict[str, Any] = {"energy_country": self.country, "energy_country_source": self.country_source}
        for name in TOTALS:
            if name in figures:
                out[f"total_{name}"] = figures[name]
        if self.unavailable:
            out["energy_unavailable"] = self.unavailable
        return out

    def stop(self) -> None:
        if self._tracker is not None:
            try:
                self._tracker.stop()
            except Exception as exc:  # the figures are already taken (totals); say why the tracker did not stop
                log.warning("yprov4ml: codecarbon did not stop cleanly: %s: %s", type(exc).__name__, exc)
            self._tracker = None
