"""NVIDIA GPUs through NVML (the ``nvidia-ml-py`` package, module ``pynvml``), imported only when used."""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("yprov4ml")


class GpuCollector:
    """Memory, utilisation, power, temperature and energy of every visible GPU.

    A figure the driver does not support is dropped for that GPU after its first
    failure, so a sample never pays twice for an unsupported call.
    """

    def __init__(self, nvml: Any, handles: list[Any]):
        self._nvml = nvml
        self._handles = handles
        self._unsupported: set[tuple[int, str]] = set()

    @classmethod
    def create(cls) -> "GpuCollector | None":
        """A collector for the visible GPUs, or None (with one info line) when there are none."""
        try:
            import pynvml as nvml
        except ImportError:
            log.info("yprov4ml: no GPU figures: nvidia-ml-py is not installed (pip install 'yprov4ml[gpu]')")
            return None
        try:
            nvml.nvmlInit()
            count = nvml.nvmlDeviceGetCount()
            handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
        except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
            log.info("yprov4ml: no GPU figures: NVML is not available (%s)", exc)
            return None
        if not handles:
            log.info("yprov4ml: no GPU figures: NVML sees no GPU")
            return None
        return cls(nvml, handles)

    @property
    def device_count(self) -> int:
        return len(self._handles)

    def _read(self, index: int, figure: str, call: Any) -> Any:
        if (index, figure) in self._unsupported:
            return None
        try:
            return call()
        except Exception:  # NVMLError_NotSupported and friends: this GPU lacks the figure
            self._unsupported.add((index, figure))
            return None

    def sample(self) -> list[tuple[str, float, str]]:
        nvml, out = self._nvml, []
        for i, handle in enumerate(self._handles):
            memory = self._read(i, "memory", lambda: nvml.nvmlDeviceGetMemoryInfo(handle))
            if memory is not None:
                out.append((f"gpu{i}_memory_used_bytes", float(memory.used), "B"))
                out.append((f"gpu{i}_memory_total_bytes", float(memory.total), "B"))
            rates = self._read(i, "utilization", lambda: nvml.nvmlDeviceGetUtilizationRates(handle))
            if rates is not None:
                out.append((f"gpu{i}_utilization_percent", float(rates.gpu), "%"))
            power = self._read(i, "power", lambda: nvml.nvmlDeviceGetPowerUsage(handle))
            if power is not None:
                out.append((f"gpu{i}_power_w", power / 1000.0, "W"))  # NVML reports milliwatts
            temp = self._read(i, "temperature",
                              lambda: nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU))
            if temp is not None:
                out.append((f"gpu{i}_temperature_c", float(temp), "C"))
            energy = self._read(i, "energy", lambda: nvml.nvmlDeviceGetTotalEnergyConsumption(handle))
            if energy is not None:
                out.append((f"gpu{i}_energy_j", energy / 1000.0, "J"))  # millijoules since driver load
        return out

    def describe(self) -> list[str]:
        """``gpu0 NVIDIA H100 ...`` for the environment entity."""
        names = []
        for i, handle in enumerate(self._handles):
            name = self._read(i, "name", lambda: self._nvml.nvmlDeviceGetName(handle))
            names.append(f"gpu{i} {name.decode() if isinstance(name, bytes) else name}")
        return names
