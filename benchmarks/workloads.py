"""Every registered workload under every engine and scale: engines are lines on the same graph.

Settings (host overlay, scales, overrides) come from PREPBENCH_* variables; `python -m harness bench` sets
them. One process per benchmark: the session starts and the workload warms up in setup(), outside the
timed region; number = 1 so that setup() is not repeated between timed calls.
"""

from harness import EngineUnavailable, config, trial, workloads

SETTINGS = config.RunSettings.from_env()


class Workloads:
    params = (list(SETTINGS.engines), workloads.selected(SETTINGS.workloads), list(SETTINGS.scales))
    param_names = ("engine", "workload", "scale")
    number = 1
    repeat = (3, 10, 60.0)
    rounds = 1
    warmup_time = 0
    timeout = 3600

    def setup_cache(self):
        return trial.prepare_run(SETTINGS)

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
