"""GPU plan coverage per workload, from the real plugin (no GPU needed): the share of operators it would
run on the GPU. Measured once per run, for every workload, in setup_cache; each track_ reads its figure."""

from pathlib import Path

from harness import config, coverage, records, results, trial, workloads

SETTINGS = config.RunSettings.from_env()
SMALLEST = min((s for s in SETTINGS.scales if s != config.AS_IS), key=config.scale_rows, default="1e4")


class GpuPlanCoverage:
    params = [workloads.selected(SETTINGS.workloads)]
    param_names = ["workload"]
    timeout = 1800

    def setup_cache(self):
        run_dir = trial.current_run_dir(SETTINGS)
        return str(coverage.write(run_dir / results.COVERAGE_FILE, SETTINGS, SMALLEST))

    def setup(self, path, workload):
        found = records.read_json(Path(path)) or {}
        if found.get("unavailable"):
            raise NotImplementedError(found["unavailable"])
        result = found["workloads"][workload]
        if result.get("error"):
            raise NotImplementedError(result["error"])
        self.fraction = result["fraction"]

    def track_operators_on_gpu(self, path, workload):
        return 100.0 * self.fraction

    track_operators_on_gpu.unit = "%"
