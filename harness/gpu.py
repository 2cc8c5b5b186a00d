"""What NVML (nvidia-ml-py) says about this host's GPUs, and what they did during a run; never raising.

``probe`` lists the GPUs. ``Sampler`` runs beside a timed region in a background thread: utilization from
the driver's sample buffer (``nvmlDeviceGetSamples``: every sample the driver took, 1/6 s to 1 s apart,
rather than one point read per poll), memory used polled for its peak, power, and energy as the difference
of the energy counter between start and stop. Utilization is the percent of time a kernel was running, not
SM occupancy. On Hopper and newer, NVML's GPM metrics (SM activity, SM occupancy, DRAM bandwidth) come beside it:
profiling counters without DCGM, computed over each pair of consecutive polls. Without NVML, a driver or a GPU,
the result says so and why; nothing raises.
"""

from __future__ import annotations

import importlib
import math
import os
import statistics
import threading
import time

DEFAULT_INTERVAL_S = 0.5
UTILIZATION_MEANING = ("percent of time one or more kernels was running on the GPU (NVML utilization); "
                       "not SM occupancy: one small kernel running all the time reads 100%")
SM_ACTIVITY_MEANING = ("percent of time at least one warp was active on an SM, averaged over all SMs (NVML GPM, "
                       "Hopper and newer): unlike kernel-busy utilization, one small kernel does not read 100%")
_TIMELINE_POINTS = 120
# The GPM metrics read, by the name the summaries give them and pynvml's metric id constant.
_GPM_METRICS = (("sm_active", "NVML_GPM_METRIC_SM_UTIL"), ("sm_occupancy", "NVML_GPM_METRIC_SM_OCCUPANCY"),
                ("dram_bw_util", "NVML_GPM_METRIC_DRAM_BW_UTIL"))
_GPM_MIN_INTERVAL_S = 0.1  # NVML: GPM counters refresh about every 100 ms, so a shorter interval says nothing


def probe() -> tuple[list[dict], str | None]:
    """(GPUs, None) when NVML answers with at least one GPU, else ([], the reason there is none)."""
    try:
        import pynvml
    except ImportError as err:
        return [], f"nvidia-ml-py is not installed ({err})"
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as err:
        return [], f"NVML could not start ({err}): no NVIDIA driver or GPU on this host"
    try:
        gpus = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            gpus.append({
                "index": index,
                "name": _text(pynvml.nvmlDeviceGetName(handle)),
                "memory_bytes": pynvml.nvmlDeviceGetMemoryInfo(handle).total,
                "driver": _text(pynvml.nvmlSystemGetDriverVersion()),
                "cuda_driver_version": pynvml.nvmlSystemGetCudaDriverVersion(),
                "compute_capability": "".join(map(str, pynvml.nvmlDeviceGetCudaComputeCapability(handle))),
            })
        return gpus, None if gpus else "NVML found no GPU on this host"
    except pynvml.NVMLError as err:
        return [], f"NVML error while listing GPUs: {err}"
    finally:
        pynvml.nvmlShutdown()


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def visible_gpus(count: int, environ=os.environ) -> list[int]:
    """NVML indices of the GPUs CUDA_VISIBLE_DEVICES lets the run use (all of them when it is unset).

    Only numeric entries are understood; CUDA orders devices fastest first unless CUDA_DEVICE_ORDER=PCI_BUS_ID,
    so on a host with mixed GPUs set that too."""
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return list(range(count))
    indices = []
    for entry in (e.strip() for e in visible.split(",")):
        if not entry.isdigit() or int(entry) >= count:
            break  # CUDA stops at the first invalid entry too
        indices.append(int(entry))
    return indices


class Sampler:
    """``with Sampler(indices) as s: <timed region>``, then ``s.result()``.

    The GPUs read are the visible ones (CUDA_VISIBLE_DEVICES), or only the first with `first_only` (local
    mode, where the plugin takes one GPU). `nvml` is the pynvml module, or a stand-in in tests. The thread's
    own CPU time is recorded, so its cost is known.
    """

    def __init__(self, interval_s: float = DEFAULT_INTERVAL_S, first_only: bool = False, nvml=None):
        self.interval_s, self._first_only, self._nvml = interval_s, first_only, nvml
        self._gpus: list[_GpuReadings] = []
        self._problem: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._thread_cpu_s = 0.0
        self._wall_s = 0.0

    def __enter__(self) -> "Sampler":
        self._began = time.perf_counter()
        try:
            self._nvml = self._nvml or importlib.import_module("pynvml")
            self._nvml.nvmlInit()
        except Exception as err:  # ImportError, or NVMLError: no library, no driver
            self._problem = f"NVML is not available on this host ({err}): GPU metrics need an NVIDIA driver and GPU"
            self._nvml = None
            return self
        try:
            indices = visible_gpus(self._nvml.nvmlDeviceGetCount())[: 1 if self._first_only else None]
            since_us = int(time.time() * 1e6)  # NVML sample timestamps are wall-clock microseconds
            for index in indices:
                self._gpus.append(_GpuReadings(self._nvml, index, since_us))
            self._problem = None if self._gpus else "NVML found no GPU for this run on this host"
        except Exception as err:
            for g in self._gpus:
                g.finish()  # frees the GPM samples of the GPUs opened before the error
            self._problem, self._gpus = f"NVML error while opening the GPUs: {err}", []
        if self._gpus:
            self._thread = threading.Thread(target=self._run, name="prepbench-nvml-sampler", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            for g in self._gpus:
                g.poll()
        self._thread_cpu_s = time.thread_time()

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()
        for g in self._gpus:
            try:
                g.poll()  # what the driver sampled since the last poll
            finally:
                g.finish()
        self._wall_s = time.perf_counter() - self._began
        if self._nvml is not None:
            try:
                self._nvml.nvmlShutdown()
            except Exception:
                pass  # the readings are taken; a driver that went away meanwhile changes none of them

    def result(self) -> dict:
        """Per GPU and over all of them: utilization mean and p95, GPM means, memory peak, energy, a timeline."""
        if self._problem:
            return {"available": False, "reason": self._problem}
        gpus = [g.summary() for g in self._gpus]
        utils = [value for g in self._gpus for _, value in g.util]
        energies = [g["energy_j"] for g in gpus]
        return {
            "available": True,
            "gpus": gpus,
            "util_mean_pct": statistics.fmean(utils) if utils else None,
            "util_p95_pct": percentile(utils, 95),
            "memory_peak_bytes": max(g["memory_peak_bytes"] for g in gpus),
            "energy_j": None if None in energies else sum(energies),
            "wall_s": self._wall_s,
            "interval_s": self.interval_s,
            "sampler_cpu_s": self._thread_cpu_s,
            "sampler_overhead_pct": 100 * self._thread_cpu_s / self._wall_s if self._wall_s else None,
            "utilization_means": UTILIZATION_MEANING,
            **{f"{name}_mean_pct": _mean_over(gpus, f"{name}_mean_pct") for name, _ in _GPM_METRICS},
            "sm_active_means": SM_ACTIVITY_MEANING,
        }


def _mean_over(gpus: list[dict], key: str) -> float | None:
    """The mean over the GPUs that have the value: None when none has (no GPM on any of them)."""
    values = [g[key] for g in gpus if g[key] is not None]
    return statistics.fmean(values) if values else None


class _GpuReadings:
    """One GPU's readings during a sampled region."""

    def __init__(self, nvml, index: int, since_us: int):
        self.nvml, self.index, self.since_us, self.last_us = nvml, index, since_us, since_us
        self.handle = nvml.nvmlDeviceGetHandleByIndex(index)
        self.name = _text(nvml.nvmlDeviceGetName(self.handle))
        memory = nvml.nvmlDeviceGetMemoryInfo(self.handle)
        self.memory_total, self.memory_peak = memory.total, memory.used
        self.util: list[tuple[int, float]] = []  # (timestamp in microseconds, percent)
        self.power_mw: list[int] = []
        self.problems: dict[str, str] = {}
        self.point_reads = False
        self.energy_start = self._energy()
        self.energy_end = None
        self.gpm_intervals: list[tuple[float, ...]] = []  # (seconds, then each of _GPM_METRICS in percent or None)
        self._gpm_samples: list = []
        self.gpm = self._gpm_open()

    def _gpm_open(self) -> str:
        """Whether GPM is read: "supported", with the first sample taken, or why not (also kept in problems)."""
        nvml = self.nvml
        if not hasattr(nvml, "nvmlGpmQueryDeviceSupport"):
            reason = "not supported: this nvidia-ml-py has no GPM functions"
        else:
            try:
                if nvml.nvmlGpmQueryDeviceSupport(self.handle).isSupportedDevice:
                    self._gpm_get = nvml.c_nvmlGpmMetricsGet_t()  # reused: about 19 KB, filled in each poll
                    self._gpm_get.version = nvml.NVML_GPM_METRICS_GET_VERSION
                    self._gpm_get.numMetrics = len(_GPM_METRICS)
                    for slot, (_, metric) in zip(self._gpm_get.metrics, _GPM_METRICS):
                        slot.metricId = getattr(nvml, metric)
                    for _ in range(2):  # one at a time: a failed second allocation still frees the first
                        self._gpm_samples.append(nvml.nvmlGpmSampleAlloc())
                    nvml.nvmlGpmSampleGet(self.handle, self._gpm_samples[0])
                    self._gpm_at = time.monotonic()
                    return "supported"
                reason = "not supported: NVML GPM needs Hopper or newer"
            except nvml.NVMLError as err:
                self._gpm_close()
                reason = f"not supported: NVML GPM error ({err})"
        self.problems["gpm"] = reason
        return reason

    def _gpm_poll(self) -> None:
        """One GPM sample, and the metrics over the interval since the previous one; a failure stops GPM here."""
        if not self._gpm_samples or time.monotonic() - self._gpm_at < _GPM_MIN_INTERVAL_S:
            return  # no GPM, or the interval runs on to the next poll
        nvml, get = self.nvml, self._gpm_get
        previous, current = self._gpm_samples
        try:
            nvml.nvmlGpmSampleGet(self.handle, current)
            now = time.monotonic()
            get.sample1, get.sample2 = previous, current
            nvml.nvmlGpmMetricsGet(get)
        except nvml.NVMLError as err:
            # Means over only the start of the region would misstate it: none are reported for this GPU.
            self.gpm = f"stopped during the run, so no means: NVML GPM error ({err})"
            self.problems["gpm"] = self.gpm
            self._gpm_close()
            return
        values = []
        for (name, _), metric in zip(_GPM_METRICS, get.metrics):
            if metric.nvmlReturn == nvml.NVML_SUCCESS:
                values.append(metric.value)
            else:
                values.append(None)
                self.problems.setdefault(f"gpm {name}",
                                         f"NVML GPM cannot compute {name}: {nvml.NVMLError(metric.nvmlReturn)}")
        self.gpm_intervals.append((now - self._gpm_at, *values))
        self._gpm_at = now
        self._gpm_samples.reverse()  # this sample starts the next interval

    def _gpm_close(self) -> None:
        """Free the GPM samples: NVML allocated them, and one process samples many regions."""
        while self._gpm_samples:
            sample = self._gpm_samples.pop()
            try:
                self.nvml.nvmlGpmSampleFree(sample)
            except self.nvml.NVMLError as err:
                self.problems.setdefault("gpm free", f"NVML could not free a GPM sample: {err}")

    def _gpm_means(self) -> dict[str, float | None]:
        """Time-weighted means over the intervals; None for a metric missing from any of them."""
        seconds = sum(interval[0] for interval in self.gpm_intervals)
        means = {}
        for column, (name, _) in enumerate(_GPM_METRICS, start=1):
            values = [(interval[0], interval[column]) for interval in self.gpm_intervals]
            ok = self.gpm == "supported" and seconds and all(v is not None for _, v in values)
            means[f"{name}_mean_pct"] = sum(s * v for s, v in values) / seconds if ok else None
        return means

    def poll(self) -> None:
        nvml = self.nvml
        used = self._try("memory", lambda: nvml.nvmlDeviceGetMemoryInfo(self.handle).used)
        self.memory_peak = max(self.memory_peak, used or 0)
        power = self._try("power", lambda: nvml.nvmlDeviceGetPowerUsage(self.handle))
        if power is not None:
            self.power_mw.append(power)
        self._gpm_poll()
        try:
            _, samples = nvml.nvmlDeviceGetSamples(self.handle, nvml.NVML_GPU_UTILIZATION_SAMPLES, self.last_us)
            for sample in sorted(samples, key=lambda s: s.timeStamp):
                if sample.timeStamp > self.last_us:
                    self.util.append((sample.timeStamp, float(sample.sampleValue.uiVal)))
                    self.last_us = sample.timeStamp
        except nvml.NVMLError as err:
            if err.value == nvml.NVML_ERROR_NOT_FOUND:
                return  # no new sample since the last poll
            self.point_reads = True  # no sample buffer on this GPU: fall back to a point read per poll
            self._try("utilization", lambda: self.util.append(
                (int(time.time() * 1e6), float(nvml.nvmlDeviceGetUtilizationRates(self.handle).gpu))))

    def finish(self) -> None:
        self.energy_end = self._energy()
        self._gpm_close()

    def _energy(self) -> int | None:
        """Millijoules since the driver loaded (Volta and newer)."""
        return self._try("energy", lambda: self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle))

    def _try(self, what: str, read):
        try:
            return read()
        except self.nvml.NVMLError as err:
            self.problems.setdefault(what, f"NVML cannot read {what} on this GPU: {err}")
            return None

    def summary(self) -> dict:
        values = [value for _, value in self.util]
        energy = (None if self.energy_start is None or self.energy_end is None
                  else (self.energy_end - self.energy_start) / 1000)
        step = max(1, math.ceil(len(self.util) / _TIMELINE_POINTS))
        return {
            "index": self.index,
            "name": self.name,
            "util_mean_pct": statistics.fmean(values) if values else None,
            "util_p95_pct": percentile(values, 95),
            "util_samples": len(values),
            "util_source": "point reads (no sample buffer)" if self.point_reads else "driver sample buffer",
            "memory_peak_bytes": self.memory_peak,
            "memory_total_bytes": self.memory_total,
            "power_mean_w": statistics.fmean(self.power_mw) / 1000 if self.power_mw else None,
            "energy_j": energy,
            "timeline": [[round((t - self.since_us) / 1e6, 3), v] for t, v in self.util[::step]],
            **self._gpm_means(),
            "gpm": self.gpm if self.gpm != "supported" or self.gpm_intervals
            else "supported, but the region ended before one GPM interval (100 ms)",
            "gpm_intervals": len(self.gpm_intervals),
            "problems": self.problems,
        }


def percentile(values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile: a value that was actually observed."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]
