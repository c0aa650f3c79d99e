"""System load: process and system CPU, memory, and the run directory's disk (psutil, or /proc on Linux)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def system_collector(run_dir: Path) -> Any:
    """The cheapest collector of the system figures here: /proc on Linux, psutil elsewhere."""
    from . import procfs

    return procfs.ProcSampler(run_dir) if procfs.available() else SystemCollector(run_dir)


class SystemCollector:
    """Samples the figures of ``log_system_metrics``; each is (name, value, unit)."""

    def __init__(self, run_dir: Path):
        import psutil

        self._psutil = psutil
        self._process = psutil.Process()
        self._run_dir = str(run_dir)
        # cpu_percent(None) compares with the previous call: prime both counters now.
        self._process.cpu_percent(None)
        psutil.cpu_percent(None)

    def close(self) -> None:
        """Nothing to release (``ProcSampler`` keeps files open)."""

    def sample(self) -> list[tuple[str, float, str]]:
        psutil = self._psutil
        with self._process.oneshot():
            process_cpu = self._process.cpu_percent(None)
            rss = self._process.memory_info().rss
        memory = psutil.virtual_memory()
        disk = psutil.disk_usage(self._run_dir)
        return [
            ("process_cpu_percent", process_cpu, "%"),
            ("system_cpu_percent", psutil.cpu_percent(None), "%"),
            ("process_memory_rss_bytes", float(rss), "B"),
            ("system_memory_used_bytes", float(memory.used), "B"),
            ("system_memory_percent", memory.percent, "%"),
            ("disk_used_bytes", float(disk.used), "B"),
            ("disk_percent", disk.percent, "%"),
        ]
