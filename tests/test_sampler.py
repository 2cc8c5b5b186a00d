"""The NVML sampler's logic against a stand-in for the NVML library (this host has no GPU), and the real
library's answer here: unavailable, with the reason."""

import ctypes
import time
from types import SimpleNamespace

import pynvml
import pytest

from harness import gpu
from harness.results import Record


class NVMLError(Exception):
    def __init__(self, value):
        super().__init__(f"NVML error {value}")
        self.value = value


class StandInNVML:
    """pynvml's calls the sampler uses, backed by a scripted GPU: the driver buffer holds a utilization sample
    every 20 ms, 100% and 50% in turn, including samples from before the sampler started.

    GPM (Hopper and newer) uses nvidia-ml-py's own structs and sample pointers, so the sampler is checked against
    their fields: SM activity is 20% and 60% in turn, occupancy and DRAM bandwidth fixed; a metric id missing
    from `gpm_values` is one NVML cannot compute, and the `gpm_fails_at`-th sample read fails. Misuse (a sample
    not allocated, freed twice, or read out of order) is an NVMLError the sampler records as a problem."""

    NVMLError = NVMLError
    NVML_SUCCESS = 0
    NVML_GPU_UTILIZATION_SAMPLES = 1
    NVML_ERROR_INVALID_ARGUMENT = 2
    NVML_ERROR_NOT_SUPPORTED = 3
    NVML_ERROR_NOT_FOUND = 6
    NVML_ERROR_GPU_IS_LOST = 15
    NVML_GPM_METRIC_SM_UTIL, NVML_GPM_METRIC_SM_OCCUPANCY, NVML_GPM_METRIC_DRAM_BW_UTIL = 2, 3, 10
    NVML_GPM_METRICS_GET_VERSION = pynvml.NVML_GPM_METRICS_GET_VERSION
    c_nvmlGpmMetricsGet_t = pynvml.c_nvmlGpmMetricsGet_t

    def __init__(self, gpus=1, energy=True, sample_buffer=True, gpm=True, gpm_fails_at=None,
                 gpm_values=(2, 3, 10)):
        self.gpus, self.energy, self.sample_buffer = gpus, energy, sample_buffer
        self.buffer = [(int((time.time() - 5 + i * 0.02) * 1e6), 0.0) for i in range(100)]  # before the start
        self.delivered: list[tuple[int, float]] = []
        self.memory_reads = 0
        self.shut_down = False
        self.gpm, self.gpm_fails_at, self.gpm_values = gpm, gpm_fails_at, gpm_values
        self.gpm_samples: dict[int, tuple | None] = {}  # allocated, not freed: address -> (GPU, when) last read
        self.gpm_allocated = self.gpm_freed = self.gpm_reads = 0
        self.gpm_computed: list[tuple[int, float, float]] = []  # (GPU, interval in seconds, SM activity)

    def nvmlInit(self): pass
    def nvmlShutdown(self): self.shut_down = True
    def nvmlDeviceGetCount(self): return self.gpus
    def nvmlDeviceGetHandleByIndex(self, index): return index
    def nvmlDeviceGetName(self, handle): return b"Stand-in GPU"

    def nvmlDeviceGetMemoryInfo(self, handle):
        self.memory_reads += 1
        used = 2**30 * (3 if self.memory_reads == 3 else 1)  # one 3 GiB peak between polls
        return SimpleNamespace(total=80 * 2**30, used=used, free=80 * 2**30 - used)

    def nvmlDeviceGetPowerUsage(self, handle): return 250_000

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):
        if not self.energy:
            raise NVMLError(self.NVML_ERROR_NOT_SUPPORTED)
        return int(time.time() * 1e6)  # microseconds read as millijoules: a steady 1000 W

    def nvmlDeviceGetUtilizationRates(self, handle): return SimpleNamespace(gpu=42, memory=10)

    def nvmlDeviceGetSamples(self, handle, kind, last_seen_us):
        assert kind == self.NVML_GPU_UTILIZATION_SAMPLES
        if not self.sample_buffer:
            raise NVMLError(self.NVML_ERROR_NOT_SUPPORTED)
        now = int(time.time() * 1e6)
        while self.buffer[-1][0] + 20_000 <= now:
            stamp = self.buffer[-1][0] + 20_000
            self.buffer.append((stamp, 100.0 if len(self.buffer) % 2 else 50.0))
        newer = [s for s in self.buffer if s[0] > last_seen_us]
        if not newer:
            raise NVMLError(self.NVML_ERROR_NOT_FOUND)
        self.delivered += newer
        return 1, [SimpleNamespace(timeStamp=t, sampleValue=SimpleNamespace(uiVal=int(v))) for t, v in newer]

    def nvmlGpmQueryDeviceSupport(self, handle):
        return pynvml.c_nvmlGpmSupport_t(version=pynvml.NVML_GPM_SUPPORT_VERSION, isSupportedDevice=self.gpm)

    def nvmlGpmSampleAlloc(self):
        sample = pynvml.c_nvmlGpmSample_t(pynvml.struct_c_nvmlGpmSample_t())
        self.gpm_samples[ctypes.addressof(sample.contents)] = None
        self.gpm_allocated += 1
        return sample

    def _allocated(self, sample) -> int:
        if not sample or ctypes.addressof(sample.contents) not in self.gpm_samples:
            raise NVMLError(self.NVML_ERROR_INVALID_ARGUMENT)
        return ctypes.addressof(sample.contents)

    def nvmlGpmSampleGet(self, handle, sample):
        address = self._allocated(sample)
        self.gpm_reads += 1
        if self.gpm_reads == self.gpm_fails_at:
            raise NVMLError(self.NVML_ERROR_GPU_IS_LOST)
        self.gpm_samples[address] = handle, time.monotonic()
        return sample

    def nvmlGpmMetricsGet(self, get):
        first, second = (self.gpm_samples[self._allocated(s)] for s in (get.sample1, get.sample2))
        if (get.version != self.NVML_GPM_METRICS_GET_VERSION or None in (first, second)
                or first[0] != second[0] or second[1] <= first[1]):
            raise NVMLError(self.NVML_ERROR_INVALID_ARGUMENT)
        gpu_index = second[0]
        sm_active = 20.0 if sum(1 for c in self.gpm_computed if c[0] == gpu_index) % 2 else 60.0
        self.gpm_computed.append((gpu_index, second[1] - first[1], sm_active))
        values = {self.NVML_GPM_METRIC_SM_UTIL: sm_active, self.NVML_GPM_METRIC_SM_OCCUPANCY: 12.5,
                  self.NVML_GPM_METRIC_DRAM_BW_UTIL: 61.0}
        for metric in get.metrics[:get.numMetrics]:
            computed = metric.metricId in self.gpm_values
            metric.nvmlReturn = self.NVML_SUCCESS if computed else self.NVML_ERROR_NOT_SUPPORTED
            metric.value = values[metric.metricId] if computed else 0.0
        return get

    def nvmlGpmSampleFree(self, sample):
        del self.gpm_samples[self._allocated(sample)]
        self.gpm_freed += 1


def sample(nvml, seconds=0.4, **options):
    began = time.time()
    with gpu.Sampler(interval_s=0.05, nvml=nvml, **options) as sampler:
        time.sleep(seconds)
    return sampler.result(), began


def test_utilization_comes_from_the_driver_buffer_each_sample_once_and_none_from_before():
    nvml = StandInNVML()
    found, began = sample(nvml)
    values = [v for _, v in nvml.delivered]
    assert found["available"] and nvml.shut_down
    assert found["gpus"][0]["util_samples"] == len(values) == len(set(nvml.delivered)) >= 15
    assert all(t > began * 1e6 for t, _ in nvml.delivered)
    assert found["util_mean_pct"] == pytest.approx(sum(values) / len(values)) and 70 <= found["util_mean_pct"] <= 80
    assert found["util_p95_pct"] == 100.0
    assert found["gpus"][0]["util_source"] == "driver sample buffer"
    assert "not SM occupancy" in found["utilization_means"]


def test_memory_peak_power_and_energy_as_the_counter_difference():
    found, _ = sample(StandInNVML())
    g = found["gpus"][0]
    assert found["memory_peak_bytes"] == g["memory_peak_bytes"] == 3 * 2**30 and g["memory_total_bytes"] == 80 * 2**30
    assert g["power_mean_w"] == 250.0
    assert found["energy_j"] == g["energy_j"] == pytest.approx(found["wall_s"] * 1000, rel=0.1)  # 1000 W stand-in
    assert 0 <= found["sampler_overhead_pct"] < 100 and found["interval_s"] == 0.05


def test_the_timeline_is_short_enough_to_draw_and_starts_at_the_run():
    found, _ = sample(StandInNVML(), seconds=3.0)
    timeline = found["gpus"][0]["timeline"]
    assert 60 <= len(timeline) <= 120
    assert 0 < timeline[0][0] < 0.5 and timeline[-1][0] == pytest.approx(3.0, abs=0.5)


def test_a_gpu_without_an_energy_counter_or_sample_buffer_still_reports_what_it_can():
    found, _ = sample(StandInNVML(energy=False, sample_buffer=False))
    g = found["gpus"][0]
    assert found["available"] and found["energy_j"] is None and "energy" in g["problems"]
    assert g["util_source"].startswith("point reads") and g["util_mean_pct"] == 42.0


def test_every_visible_gpu_is_read_or_only_the_first_in_local_mode(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,0")
    assert gpu.visible_gpus(4) == [2, 0]
    assert [g["index"] for g in sample(StandInNVML(gpus=4), 0.1)[0]["gpus"]] == [2, 0]
    assert [g["index"] for g in sample(StandInNVML(gpus=4), 0.1, first_only=True)[0]["gpus"]] == [2]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,GPU-abc,3")
    assert gpu.visible_gpus(4) == [1]  # CUDA stops at the first entry it cannot use
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert gpu.visible_gpus(3) == [0, 1, 2]


def busy(found):
    return Record("rapids", "w", "s", gpu_metrics=found).gpu_busy_pct


def test_on_hopper_sm_activity_is_written_per_gpu_and_over_them_and_the_verdict_prefers_it(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    nvml = StandInNVML(gpus=2)
    found, _ = sample(nvml, 0.8)
    assert all(seconds >= 0.1 for _, seconds, _ in nvml.gpm_computed)  # NVML's counters refresh every 100 ms
    for g in found["gpus"]:
        computed = [(seconds, v) for index, seconds, v in nvml.gpm_computed if index == g["index"]]
        expected = sum(seconds * v for seconds, v in computed) / sum(seconds for seconds, _ in computed)
        assert g["gpm"] == "supported" and g["problems"] == {} and 3 <= g["gpm_intervals"] == len(computed) <= 8
        assert g["sm_active_mean_pct"] == pytest.approx(expected, rel=0.02)  # weighted by each interval's length
        assert 20 < g["sm_active_mean_pct"] < 60
        assert (g["sm_occupancy_mean_pct"], g["dram_bw_util_mean_pct"]) == (pytest.approx(12.5), pytest.approx(61.0))
    assert found["sm_active_mean_pct"] == pytest.approx(sum(g["sm_active_mean_pct"] for g in found["gpus"]) / 2)
    assert found["sm_occupancy_mean_pct"] == pytest.approx(12.5) and found["dram_bw_util_mean_pct"] == pytest.approx(61)
    assert "warp" in found["sm_active_means"] and "does not read 100%" in found["sm_active_means"]
    assert nvml.gpm_samples == {} and nvml.gpm_allocated == nvml.gpm_freed == 4
    assert busy(found) == (found["sm_active_mean_pct"], "SM activity (NVML GPM)")


def test_a_gpu_without_gpm_falls_back_to_kernel_busy_time_and_says_why():
    class NoGpmFunctions(StandInNVML):  # an nvidia-ml-py from before GPM
        def __getattribute__(self, name):
            if name.startswith("nvmlGpm"):
                raise AttributeError(name)
            return super().__getattribute__(name)

    for nvml, why in ((StandInNVML(gpm=False), "Hopper"), (NoGpmFunctions(), "no GPM functions")):
        found, _ = sample(nvml, 0.3)
        g = found["gpus"][0]
        assert g["gpm"].startswith("not supported") and why in g["gpm"] and g["problems"]["gpm"] == g["gpm"]
        assert g["sm_active_mean_pct"] is g["sm_occupancy_mean_pct"] is g["dram_bw_util_mean_pct"] is None
        assert found["sm_active_mean_pct"] is found["sm_occupancy_mean_pct"] is found["dram_bw_util_mean_pct"] is None
        assert busy(found) == (found["util_mean_pct"], "kernel-busy time (NVML utilization)")
        assert nvml.gpm_allocated == 0 and found["util_mean_pct"] is not None


def test_a_gpm_read_failing_mid_run_stops_gpm_frees_its_samples_and_reports_no_partial_mean():
    nvml = StandInNVML(gpm_fails_at=4)
    found, _ = sample(nvml, 0.8)
    g = found["gpus"][0]
    assert g["gpm"].startswith("stopped during the run") and "NVML error 15" in g["problems"]["gpm"]
    assert nvml.gpm_reads == 4 and g["gpm_intervals"] == 2  # the first read opens; none after the failure
    assert g["sm_active_mean_pct"] is None and found["sm_active_mean_pct"] is None
    assert busy(found)[1] == "kernel-busy time (NVML utilization)" and g["util_samples"] >= 15
    assert nvml.gpm_samples == {} and nvml.gpm_allocated == nvml.gpm_freed == 2


def test_a_metric_nvml_cannot_compute_is_none_and_the_others_are_kept():
    nvml = StandInNVML(gpm_values=(2, 3))
    found, _ = sample(nvml, 0.4)
    g = found["gpus"][0]
    assert g["gpm"] == "supported" and g["dram_bw_util_mean_pct"] is None and found["dram_bw_util_mean_pct"] is None
    assert "NVML error 3" in g["problems"]["gpm dram_bw_util"] and g["sm_occupancy_mean_pct"] == pytest.approx(12.5)
    assert busy(found)[1] == "SM activity (NVML GPM)"


def test_gpm_samples_are_freed_when_opening_a_later_gpu_fails(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)

    class SecondGpuLost(StandInNVML):
        def nvmlDeviceGetName(self, handle):
            if handle == 1:
                raise NVMLError(self.NVML_ERROR_GPU_IS_LOST)
            return super().nvmlDeviceGetName(handle)

    nvml = SecondGpuLost(gpus=2)
    found, _ = sample(nvml, 0.05)
    assert found["available"] is False and "NVML error 15" in found["reason"]
    assert nvml.gpm_samples == {} and nvml.gpm_allocated == nvml.gpm_freed == 2


def test_a_library_that_fails_to_start_is_unavailable_with_the_reason():
    class Broken(StandInNVML):
        def nvmlInit(self):
            raise NVMLError(12)
    found, _ = sample(Broken(), 0.05)
    assert found == {"available": False, "reason": found["reason"]} and "NVML error 12" in found["reason"]


def test_on_this_host_the_real_library_says_why_there_are_no_gpu_metrics():
    gpus, problem = gpu.probe()
    if gpus:
        pytest.skip("this host has a GPU: the real sampler is checked by the GPU run (see the results)")
    with gpu.Sampler(interval_s=0.05) as sampler:
        time.sleep(0.1)
    found = sampler.result()
    assert found["available"] is False and "NVML" in found["reason"]
    assert busy(found) == (None, "not measured")

    class RealGpm(StandInNVML):
        """The stand-in GPU, with nvidia-ml-py's own GPM functions and errors: uninitialized here."""
        NVMLError = pynvml.NVMLError
        nvmlGpmQueryDeviceSupport = staticmethod(pynvml.nvmlGpmQueryDeviceSupport)
        nvmlGpmSampleAlloc = staticmethod(pynvml.nvmlGpmSampleAlloc)

    readings = gpu._GpuReadings(RealGpm(), 0, int(time.time() * 1e6))
    readings.finish()
    assert readings.summary()["gpm"] == "not supported: NVML GPM error (Uninitialized)"
    # The names the sampler reads from pynvml, with the values the stand-in gives them.
    assert (pynvml.NVML_SUCCESS, pynvml.NVML_GPM_METRIC_SM_UTIL, pynvml.NVML_GPM_METRIC_SM_OCCUPANCY,
            pynvml.NVML_GPM_METRIC_DRAM_BW_UTIL) == (0, 2, 3, 10)
    assert all(callable(getattr(pynvml, f"nvmlGpm{name}"))
               for name in ("QueryDeviceSupport", "SampleAlloc", "SampleGet", "MetricsGet", "SampleFree"))


def test_percentile_is_a_value_that_was_observed():
    assert gpu.percentile([], 95) is None
    assert gpu.percentile([10, 20, 30, 40], 95) == 40 and gpu.percentile([10, 20, 30, 40], 50) == 20
