"""Every registered workload under every engine and scale: engines are lines on the same graph.

Settings (host overlay, engines, scales, overrides) come from PREPBENCH_* variables; `python -m harness bench`
sets them. One process per benchmark: the session opens, the workload warms up, its output is fingerprinted
and it runs once instrumented in setup(), outside the timed region; number = 1 so that setup() is not repeated
between timed calls. `WorkloadsMeasured` tracks the instrumented run's figures beside the times; asv runs it
after `Workloads` (names sort that way, in the same setup_cache), so it reads the records instead of running
anything; `WorkloadsMeasuredGpu` tracks the GPU figures of the GPU engines only (each track is a process per case).
"""

import math

from harness import EngineUnavailable, config, trial, workloads

SETTINGS = config.RunSettings.from_env()
trial.preload(SETTINGS)  # imported once by asv's forkserver, not once per benchmark process


class _Cases:
    params = (list(SETTINGS.engines), workloads.selected(SETTINGS.workloads), trial.scales(SETTINGS))
    param_names = ("engine", "workload", "scale")
    timeout = 3600

    def setup_cache(self):
        return trial.prepare_run(SETTINGS)


class Workloads(_Cases):
    number = 1
    repeat = (3, 10, 60.0)
    rounds = 1
    warmup_time = 0

    def setup(self, run_dir, engine, workload, scale):
        self._prepare(run_dir, engine, workload, scale)

    def _prepare(self, run_dir, engine, workload, scale, variant=""):
        try:
            self.trial = trial.prepared(run_dir, engine, workload, scale, SETTINGS, variant)
        except EngineUnavailable as skip:
            raise NotImplementedError(str(skip)) from None

    def time_workload(self, *params):
        self.trial.run_once()

    def teardown(self, *params):
        if hasattr(self, "trial"):
            self.trial.finish()


def _tracked(figure, unit):
    def track(self, *params):
        value = figure(self.record)
        return math.nan if value is None else value  # NaN: shown as n/a (a CPU run has no GPU figures)

    track.unit = unit
    return track


class _Measured(_Cases):
    def setup(self, run_dir, engine, workload, scale):
        try:
            self.record = trial.measured(run_dir, engine, workload, scale, SETTINGS)
        except EngineUnavailable as skip:
            raise NotImplementedError(str(skip)) from None


class WorkloadsMeasured(_Measured):
    track_rows_per_second = _tracked(lambda r: r.rows_per_s, "rows/s")
    track_cost_per_mrows_usd = _tracked(lambda r: r.cost_per_mrows_usd, "USD per 1e6 rows")


GPU_ENGINES = [e for e in SETTINGS.engines if config.engine_facts(e)[0] == "gpu"]

if GPU_ENGINES:  # a process per figure and case: only where a GPU engine runs (bench leaves out those that cannot)
    class WorkloadsMeasuredGpu(_Measured):
        params = (GPU_ENGINES, workloads.selected(SETTINGS.workloads), trial.scales(SETTINGS))
        track_gpu_busy_pct = _tracked(lambda r: r.gpu_busy_pct[0], "%")
        track_gpu_util_p95_pct = _tracked(lambda r: r.gpu_metrics.get("util_p95_pct"), "%")
        track_gpu_memory_peak_bytes = _tracked(lambda r: r.gpu_metrics.get("memory_peak_bytes"), "bytes")
        track_energy_per_mrows_j = _tracked(lambda r: r.gpu_metrics.get("energy_per_mrows_j"), "J per 1e6 rows")
        track_fallback_pct = _tracked(lambda r: None if r.fallback_fraction is None else 100 * r.fallback_fraction, "%")
