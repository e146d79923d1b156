"""GPU discovery for the local backend: NVML when present, simulated GPUs when configured."""

from __future__ import annotations

import logging

from pai_hub.backends.base import GpuInfo

log = logging.getLogger(__name__)

SIMULATED_GPU_MEMORY_MB = 16384


def discover_gpus() -> list[GpuInfo]:
    """The machine's NVIDIA GPUs in NVML (PCI bus) order; [] when NVML is missing or fails."""
    try:
        import pynvml
    except ImportError:
        return []
    try:
        pynvml.nvmlInit()
    except Exception:  # no driver / no library: a machine without GPUs, not an error
        return []
    gpus = []
    try:
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            name = pynvml.nvmlDeviceGetName(handle)
            uuid = pynvml.nvmlDeviceGetUUID(handle)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle).total // (1024 * 1024)
            gpus.append(GpuInfo(
                index=i,
                uuid=uuid.decode() if isinstance(uuid, bytes) else str(uuid),
                model=name.decode() if isinstance(name, bytes) else str(name),
                memory_mb=int(memory),
            ))
    except Exception as exc:
        log.warning("NVML GPU enumeration failed: %s", exc)
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:
            pass
    return gpus


def simulated_gpus(count: int, model: str = "simulated",
                   memory_mb: int = SIMULATED_GPU_MEMORY_MB) -> list[GpuInfo]:
    """``count`` declared GPUs for machines without any: uuid ``SIM-GPU-<n>``, ``simulated=True``."""
    return [GpuInfo(index=i, uuid=f"SIM-GPU-{i}", model=model, memory_mb=memory_mb, simulated=True)
            for i in range(count)]
