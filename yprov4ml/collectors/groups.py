"""Which metric series a collector wrote (system load, energy) and which the user logged.

Readers put the user's own metrics first and group the collectors' figures
after them, so a comparison or a report leads with what the run was for.
"""

from __future__ import annotations

import re
from typing import Iterable, Sequence

from .energy import FIGURES as ENERGY_FIGURES

USER, SYSTEM, ENERGY = "user", "system", "energy"
GROUPS = (USER, SYSTEM, ENERGY)  # the order readers show them in

# What log_system_metrics samples (collectors/system.py and collectors/procfs.py write the same names).
SYSTEM_FIGURES = frozenset({"process_cpu_percent", "system_cpu_percent", "process_memory_rss_bytes",
                            "system_memory_used_bytes", "system_memory_percent", "disk_used_bytes", "disk_percent"})
_GPU_FIGURE = re.compile(r"gpu\d+_(memory_used_bytes|memory_total_bytes|utilization_percent|power_w|temperature_c|"
                         r"energy_j)\Z")
ENERGY_NAMES = frozenset(name for name, _, _ in ENERGY_FIGURES)


def metric_group(key: str) -> str:
    """``system``, ``energy`` or ``user`` for a metric key (without its ``@context``)."""
    if key in SYSTEM_FIGURES or _GPU_FIGURE.match(key):
        return SYSTEM
    if key in ENERGY_NAMES:
        return ENERGY
    return USER


def says_nothing(key: str, values: Iterable[float | None]) -> bool:
    """A collector's series that is zero or absent everywhere: a device the machine does not have
    (``gpu_power_w`` 0 without a GPU). A user's own metric is never left out, zero or not."""
    return metric_group(key) != USER and all(v is None or v == 0 for v in values)


def grouped(names: Sequence[str]) -> dict[str, list[str]]:
    """``key@context`` names by group, user first, each group in its given order."""
    out: dict[str, list[str]] = {group: [] for group in GROUPS}
    for name in names:
        out[metric_group(name.split("@", 1)[0])].append(name)
    return out
