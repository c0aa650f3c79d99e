"""The opt-in background sampler: system and GPU figures every N seconds, in a daemon thread."""

from __future__ import annotations

import logging
import threading
from typing import Callable

log = logging.getLogger("yprov4ml")

SAMPLER_CONTEXT = "system"


class BackgroundSampler:
    """Calls ``sample(step)`` every ``interval_s`` seconds until stopped; never raises into training."""

    def __init__(self, sample: Callable[[int], None], interval_s: float):
        if not interval_s > 0:
            raise ValueError(f"system_metrics_interval must be a positive number of seconds, got {interval_s!r}")
        self._sample = sample
        self._interval = float(interval_s)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="yprov4ml-system-sampler", daemon=True)
        self.samples = 0

    def start(self) -> None:
        self._thread.start()

    def _loop(self) -> None:
        failed = False
        while not self._stop.wait(self._interval):
            try:
                self._sample(self.samples)
                self.samples += 1
            except Exception as exc:
                if not failed:  # report once; keep trying, a transient error may pass
                    log.warning("yprov4ml: background system sample failed: %s", exc)
                    failed = True

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self._interval + 5)
