"""Every registered workload under every engine and scale: engines are lines on the same graph.

Settings (host overlay, scales, overrides) come from PREPBENCH_* variables; `python -m harness bench` sets
them. One process per benchmark: the session starts, the workload warms up and runs once instrumented in
setup(), outside the timed region; number = 1 so that setup() is not repeated between timed calls.
`WorkloadsMeasured` tracks the instrumented run's figures beside the times; asv runs it after `Workloads`
(names sort that way, in the same setup_cache), so it reads the records instead of running anything.
"""

import math

from harness import EngineUnavailable, config, trial, workloads

SETTINGS = config.RunSettings.from_env()


class _Cases:
    params = (list(SETTINGS.engines), workloads.selected(SETTINGS.workloads), list(SETTINGS.scales))
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


def _tracked(name, unit):
    def track(self, *params):
        value = self.values[name]
        return math.nan if value is None else value  # NaN: shown as n/a (a CPU run has no GPU figures)

    track.unit = unit
    track.__name__ = f"track_{name}"
    return track


class WorkloadsMeasured(_Cases):
    def setup(self, run_dir, engine, workload, scale):
        try:
            self.values = trial.metric_values(trial.measured(run_dir, engine, workload, scale, SETTINGS))
        except EngineUnavailable as skip:
            raise NotImplementedError(str(skip)) from None

    track_rows_per_second = _tracked("rows_per_second", "rows/s")
    track_cost_per_mrows_usd = _tracked("cost_per_mrows_usd", "USD per 1e6 rows")
    track_gpu_util_mean_pct = _tracked("gpu_util_mean_pct", "%")
    track_gpu_util_p95_pct = _tracked("gpu_util_p95_pct", "%")
    track_gpu_memory_peak_bytes = _tracked("gpu_memory_peak_bytes", "bytes")
    track_energy_per_mrows_j = _tracked("energy_per_mrows_j", "J per 1e6 rows")
    track_fallback_pct = _tracked("fallback_pct", "%")
