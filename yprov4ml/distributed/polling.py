"""Waiting with back-off: every wait of a distributed run polls something shared (the run directory, rank 0's
store, an MPI request), from every rank at once, so each poll comes later than the last, up to a bound."""

from __future__ import annotations

import time
from typing import Iterator

GROWTH = 1.5  # each pause this much longer than the last


def backing_off(timeout_s: float, first_s: float, most_s: float) -> Iterator[None]:
    """Yield at once, then after pauses growing from ``first_s`` to ``most_s``, until ``timeout_s`` has passed
    (the last pause is cut to what is left): the caller polls at each yield and breaks out when done."""
    deadline, pause = time.monotonic() + timeout_s, first_s
    while True:
        yield
        left = deadline - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(pause, left))
        pause = min(pause * GROWTH, most_s)
