"""A stand-in for the ``pynvml`` module (nvidia-ml-py) with two GPUs; the second lacks an energy counter.

Only for tests on machines without a GPU: the calls and units follow NVML's
documented API (milliwatts, millijoules, bytes, percent, Celsius).
"""

from __future__ import annotations

from types import SimpleNamespace

NVML_TEMPERATURE_GPU = 0
calls: list[str] = []


class NVMLError(Exception):
    pass


class NVMLError_NotSupported(NVMLError):
    pass


def nvmlInit() -> None:
    calls.append("init")


def nvmlDeviceGetCount() -> int:
    return 2


def nvmlDeviceGetHandleByIndex(i: int) -> int:
    return i


def nvmlDeviceGetName(handle: int) -> str:
    return "NVIDIA Fake H100"


def nvmlDeviceGetMemoryInfo(handle: int):
    return SimpleNamespace(used=(handle + 1) * 2**30, total=80 * 2**30, free=0)


def nvmlDeviceGetUtilizationRates(handle: int):
    return SimpleNamespace(gpu=50 + handle, memory=10)


def nvmlDeviceGetPowerUsage(handle: int) -> int:
    return 250_000 + handle  # milliwatts


def nvmlDeviceGetTemperature(handle: int, sensor: int) -> int:
    return 60 + handle


def nvmlDeviceGetTotalEnergyConsumption(handle: int) -> int:
    calls.append(f"energy{handle}")
    if handle == 1:
        raise NVMLError_NotSupported("Not Supported")
    return 1_234_567  # millijoules
