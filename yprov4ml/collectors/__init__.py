"""Collectors of what a run costs: system load (psutil), GPUs (NVML), energy (codecarbon)."""
