"""The NVML sampler's logic against a stand-in for the NVML library (this host has no GPU), and the real
library's answer here: unavailable, with the reason."""

import time
from types import SimpleNamespace

import pytest

from harness import gpu


class NVMLError(Exception):
    def __init__(self, value):
        super().__init__(f"NVML error {value}")
        self.value = value


class StandInNVML:
    """pynvml's calls the sampler uses, backed by a scripted GPU: the driver buffer holds a utilization sample
    every 20 ms, 100% and 50% in turn, including samples from before the sampler started."""

    NVMLError = NVMLError
    NVML_GPU_UTILIZATION_SAMPLES = 1
    NVML_ERROR_NOT_SUPPORTED = 3
    NVML_ERROR_NOT_FOUND = 6

    def __init__(self, gpus=1, energy=True, sample_buffer=True):
        self.gpus, self.energy, self.sample_buffer = gpus, energy, sample_buffer
        self.buffer = [(int((time.time() - 5 + i * 0.02) * 1e6), 0.0) for i in range(100)]  # before the start
        self.delivered: list[tuple[int, float]] = []
        self.memory_reads = 0
        self.shut_down = False

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


def test_percentile_is_a_value_that_was_observed():
    assert gpu.percentile([], 95) is None
    assert gpu.percentile([10, 20, 30, 40], 95) == 40 and gpu.percentile([10, 20, 30, 40], 50) == 20
