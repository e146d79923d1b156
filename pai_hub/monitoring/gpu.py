"""GPU readings: real GPUs through NVML (pynvml), simulated GPUs from a readings file.

A source's :meth:`read` returns one :class:`GpuReading` per GPU of the node, each call. It never
raises for a missing driver, an unsupported query or a lost GPU: what cannot be read is ``None``,
and a GPU that stops answering is reported ``lost``.

- :class:`NvmlSource` (the default wherever NVML finds GPUs): utilisation, memory, temperature,
  power, uncorrected volatile ECC errors, and XID events through an NVML event set (where the GPU
  supports them). Each NVML call is wrapped on its own, so one unsupported query costs only its
  value. Written against the NVML API and tested with a fake ``pynvml``; not yet run on hardware.
- :class:`SimulatedSource`, for the simulated GPUs of a machine without any (``--simulated-gpus``)
  and for tests: it re-reads ``<data_dir>/simulated-gpus.json``, the simulated devices' readings and
  fault injection, on every poll (format in docs/operations.md).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..backends.base import GpuInfo

log = logging.getLogger("pai_hub.monitoring.gpu")

# XIDs that report an application's fault, not the hardware's (as NVIDIA's Kubernetes device
# plugin skips them): counted, but they do not make a GPU unhealthy.
APPLICATION_XIDS = (13, 31, 43, 45, 68, 109)
SIMULATED_READINGS_FILE = "simulated-gpus.json"


@dataclass
class GpuReading:
    """One GPU at one poll. ``xids``: critical XIDs held against it; ``new_xids``: XID events since
    the previous poll (all of them, application XIDs included)."""

    index: int
    uuid: str = ""
    model: str = ""
    simulated: bool = False
    utilization: float | None = None  # percent of time a kernel ran, 0-100
    memory_used_mb: float | None = None
    memory_total_mb: float | None = None
    temperature_c: float | None = None
    power_w: float | None = None
    ecc_errors: int | None = None  # uncorrected, volatile (since the driver loaded or the GPU was reset)
    xids: tuple[int, ...] = ()
    new_xids: tuple[int, ...] = ()
    lost: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        out = []
        if self.lost:
            out.append("lost (does not answer NVML)")
        if self.ecc_errors:
            out.append(f"{self.ecc_errors} uncorrected ECC error(s)")
        if self.xids:
            out.append("XID " + ", ".join(str(x) for x in self.xids))
        return out

    @property
    def healthy(self) -> bool:
        return not (self.lost or self.ecc_errors or self.xids)

    def fault_signature(self) -> tuple:
        """What the fault is, so a changed fault (more ECC errors, a new XID) can be told apart."""
        return (self.index, self.lost, self.ecc_errors or 0, self.xids)


class GpuSource(Protocol):
    kind: str

    def read(self) -> list[GpuReading]: ...

    def clear(self) -> None: ...

    def close(self) -> None: ...


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


class NvmlSource:
    """Real GPUs through NVML. Use :meth:`open`; it returns None where NVML or GPUs are missing."""

    kind = "nvml"

    def __init__(self, nvml: Any, count: int, ignored_xids: Iterable[int] = APPLICATION_XIDS) -> None:
        self.nvml = nvml
        self.count = count
        self.ignored_xids = set(ignored_xids)
        self.info: dict[int, tuple[str, str]] = {}
        self.xids: dict[int, list[int]] = {}  # critical XIDs per GPU, held until cleared
        self.event_set: Any = None
        self._lock = threading.Lock()
        self._warned: set[tuple[str, int]] = set()
        self._setup_events()

    @classmethod
    def open(cls, ignored_xids: Iterable[int] = APPLICATION_XIDS) -> NvmlSource | None:
        try:
            import pynvml
        except ImportError:
            return None
        try:
            pynvml.nvmlInit()
        except Exception:  # no driver, no library: a machine without GPUs
            return None
        try:
            count = int(pynvml.nvmlDeviceGetCount())
        except Exception as exc:
            log.warning("NVML: cannot count GPUs: %s", exc)
            count = 0
        if count <= 0:
            try:
                pynvml.nvmlShutdown()
            except Exception:
                pass
            return None
        return cls(pynvml, count, ignored_xids)

    # -- NVML calls, one at a time ------------------------------------------------------------
    def _code(self, exc: BaseException) -> int | None:
        return getattr(exc, "value", None)

    def _call(self, reading: GpuReading | None, what: str, fn: Any, *args: Any) -> Any:
        """``fn(*args)``, or None when it fails; a GPU_IS_LOST error marks the reading lost."""
        nvml = self.nvml
        try:
            return fn(*args)
        except nvml.NVMLError as exc:
            code = self._code(exc)
            if reading is not None and code == getattr(nvml, "NVML_ERROR_GPU_IS_LOST", 15):
                reading.lost = True
            elif code not in (getattr(nvml, "NVML_ERROR_NOT_SUPPORTED", 3), getattr(nvml, "NVML_ERROR_NO_PERMISSION", 4)):
                key = (what, reading.index if reading is not None else -1)
                if key not in self._warned:
                    self._warned.add(key)
                    log.warning("NVML %s failed%s: %s", what,
                                f" on GPU {reading.index}" if reading is not None else "", exc)
            return None
        except Exception as exc:  # a binding missing from an old pynvml, a ctypes error
            key = (what, reading.index if reading is not None else -1)
            if key not in self._warned:
                self._warned.add(key)
                log.warning("NVML %s unavailable: %s", what, exc)
            return None

    def _setup_events(self) -> None:
        nvml = self.nvml
        mask = getattr(nvml, "nvmlEventTypeXidCriticalError", None)
        if mask is None:
            return
        event_set = self._call(None, "nvmlEventSetCreate", nvml.nvmlEventSetCreate)
        if event_set is None:
            return
        registered = 0
        for i in range(self.count):
            handle = self._call(None, "nvmlDeviceGetHandleByIndex", nvml.nvmlDeviceGetHandleByIndex, i)
            if handle is None:
                continue
            supported = self._call(None, "nvmlDeviceGetSupportedEventTypes", nvml.nvmlDeviceGetSupportedEventTypes,
                                   handle)
            if supported is not None and not int(supported) & mask:
                continue  # this GPU reports no XID events (e.g. some consumer boards)
            try:
                nvml.nvmlDeviceRegisterEvents(handle, mask, event_set)
                registered += 1
            except Exception as exc:
                log.info("NVML: no XID events from GPU %d: %s", i, exc)
        if registered:
            self.event_set = event_set
        else:
            self._call(None, "nvmlEventSetFree", nvml.nvmlEventSetFree, event_set)

    def _drain_events(self) -> dict[int, list[int]]:
        """XID events waiting in the event set, per GPU index (without blocking)."""
        nvml = self.nvml
        out: dict[int, list[int]] = {}
        if self.event_set is None:
            return out
        mask = nvml.nvmlEventTypeXidCriticalError
        for _ in range(1000):  # bounded: a storm of events is read over several polls
            try:
                data = nvml.nvmlEventSetWait_v2(self.event_set, 0)
            except nvml.NVMLError as exc:
                if self._code(exc) != getattr(nvml, "NVML_ERROR_TIMEOUT", 10):
                    self._call(None, "nvmlEventSetWait", _raise, exc)
                break
            except Exception as exc:
                self._call(None, "nvmlEventSetWait", _raise, exc)
                break
            if not int(data.eventType) & mask:
                continue
            index = self._call(None, "nvmlDeviceGetIndex", nvml.nvmlDeviceGetIndex, data.device)
            if index is None:
                continue
            out.setdefault(int(index), []).append(int(data.eventData))
        return out

    # -- reading --------------------------------------------------------------------------------
    def read(self) -> list[GpuReading]:
        with self._lock:
            return self._read()

    def _read(self) -> list[GpuReading]:
        nvml = self.nvml
        events = self._drain_events()
        out = []
        for i in range(self.count):
            r = GpuReading(index=i)
            handle = self._call(r, "nvmlDeviceGetHandleByIndex", nvml.nvmlDeviceGetHandleByIndex, i)
            if handle is None:
                r.lost = True  # enumerated at start, unreachable now
            else:
                if i not in self.info:
                    uuid = self._call(r, "nvmlDeviceGetUUID", nvml.nvmlDeviceGetUUID, handle)
                    name = self._call(r, "nvmlDeviceGetName", nvml.nvmlDeviceGetName, handle)
                    if uuid is not None:
                        self.info[i] = (_text(uuid), _text(name) if name is not None else "")
                util = self._call(r, "nvmlDeviceGetUtilizationRates", nvml.nvmlDeviceGetUtilizationRates, handle)
                if util is not None:
                    r.utilization = float(util.gpu)
                mem = self._call(r, "nvmlDeviceGetMemoryInfo", nvml.nvmlDeviceGetMemoryInfo, handle)
                if mem is not None:
                    r.memory_used_mb = mem.used / 2**20
                    r.memory_total_mb = mem.total / 2**20
                temp = self._call(r, "nvmlDeviceGetTemperature", nvml.nvmlDeviceGetTemperature, handle,
                                  getattr(nvml, "NVML_TEMPERATURE_GPU", 0))
                if temp is not None:
                    r.temperature_c = float(temp)
                power = self._call(r, "nvmlDeviceGetPowerUsage", nvml.nvmlDeviceGetPowerUsage, handle)
                if power is not None:
                    r.power_w = power / 1000.0  # milliwatts
                ecc = self._call(r, "nvmlDeviceGetTotalEccErrors", nvml.nvmlDeviceGetTotalEccErrors, handle,
                                 getattr(nvml, "NVML_MEMORY_ERROR_TYPE_UNCORRECTED", 1),
                                 getattr(nvml, "NVML_VOLATILE_ECC", 0))
                if ecc is not None:
                    r.ecc_errors = int(ecc)
            r.uuid, r.model = self.info.get(i, ("", ""))
            new = events.get(i, [])
            r.new_xids = tuple(new)
            held = self.xids.setdefault(i, [])
            held.extend(x for x in new if x not in self.ignored_xids and x not in held)
            r.xids = tuple(held)
            out.append(r)
        return out

    def clear(self) -> None:
        """An admin cleared the node: forget the XIDs held against its GPUs."""
        with self._lock:
            self.xids.clear()

    def close(self) -> None:
        with self._lock:
            if self.event_set is not None:
                self._call(None, "nvmlEventSetFree", self.nvml.nvmlEventSetFree, self.event_set)
                self.event_set = None
            self._call(None, "nvmlShutdown", self.nvml.nvmlShutdown)


def _raise(exc: BaseException) -> None:
    raise exc


class SimulatedSource:
    """The simulated GPUs' readings, re-read from a JSON file on every poll.

    ``{"0": {"utilization": 85, "memory_used_mb": 4096, "temperature": 61, "power_w": 180,
    "ecc_errors": 0, "xid": [], "lost": false}, "1": {...}}`` — keyed by GPU index, every field
    optional. A GPU without an entry (or without the file) has no utilisation, memory use,
    temperature or power reading and is healthy. Faults are states here: a GPU is unhealthy while
    its entry shows one (``ecc_errors`` > 0, a non-empty ``xid`` other than application XIDs,
    ``lost``) and recovers when the entry no longer does.
    """

    kind = "simulated"

    def __init__(self, path: Path, gpus: Iterable[GpuInfo], ignored_xids: Iterable[int] = APPLICATION_XIDS) -> None:
        self.path = Path(path)
        self.gpus = list(gpus)
        self.ignored_xids = set(ignored_xids)
        self._last: dict[str, Any] = {}
        self._text: str | None = None
        self._prev_xids: dict[int, tuple[int, ...]] = {}

    def _load(self) -> dict[str, Any]:
        """The file's readings; read on every poll (it is small, and file times can be too coarse to
        notice two edits within one tick)."""
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            self._last, self._text = {}, None
            return {}
        except OSError as exc:
            log.warning("simulated GPU readings %s: %s", self.path, exc)
            return self._last
        if text == self._text:
            return self._last
        try:
            data = json.loads(text or "{}")
            if not isinstance(data, dict):
                raise ValueError("expected an object keyed by GPU index")
        except ValueError as exc:
            log.warning("simulated GPU readings %s ignored (keeping the previous ones): %s", self.path, exc)
            self._text = text
            return self._last
        self._last, self._text = data, text
        return data

    def read(self) -> list[GpuReading]:
        data = self._load()
        out = []
        for g in self.gpus:
            entry = data.get(str(g.index))
            r = GpuReading(index=g.index, uuid=g.uuid, model=g.model, simulated=True,
                           memory_total_mb=float(g.memory_mb))
            if isinstance(entry, dict):
                r.utilization = _num(entry, "utilization")
                r.memory_used_mb = _num(entry, "memory_used_mb")
                if _num(entry, "memory_total_mb") is not None:
                    r.memory_total_mb = _num(entry, "memory_total_mb")
                r.temperature_c = _num(entry, "temperature")
                r.power_w = _num(entry, "power_w")
                ecc = _num(entry, "ecc_errors")
                r.ecc_errors = int(ecc) if ecc is not None else 0
                xid = entry.get("xid") or []
                xids = tuple(int(x) for x in (xid if isinstance(xid, list) else [xid]) if _is_int(x))
                before = self._prev_xids.get(g.index, ())
                r.new_xids = tuple(x for x in xids if x not in before)
                self._prev_xids[g.index] = xids
                r.xids = tuple(x for x in xids if x not in self.ignored_xids)
                r.lost = bool(entry.get("lost", False))
            else:
                self._prev_xids.pop(g.index, None)
            out.append(r)
        return out

    def clear(self) -> None:
        pass  # the file is the state: an admin fixes it there

    def close(self) -> None:
        pass


def _is_int(x: Any) -> bool:
    try:
        int(x)
    except (TypeError, ValueError):
        return False
    return not isinstance(x, bool)


def _num(entry: dict[str, Any], key: str) -> float | None:
    v = entry.get(key)
    if isinstance(v, bool) or v is None:
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def open_source(gpus: Iterable[GpuInfo], readings_file: Path, use_nvml: bool = True,
                ignored_xids: Iterable[int] = APPLICATION_XIDS) -> GpuSource | None:
    """NVML for a node with real GPUs, the readings file for simulated ones, None without GPUs."""
    gpus = list(gpus)
    if not gpus:
        return None
    if all(g.simulated for g in gpus):
        return SimulatedSource(readings_file, gpus, ignored_xids)
    if use_nvml:
        src = NvmlSource.open(ignored_xids)
        if src is not None:
            return src
        log.warning("the node has GPUs but NVML cannot be opened: no GPU readings, no GPU health checks")
    return None
