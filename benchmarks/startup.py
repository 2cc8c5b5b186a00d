"""Fixed cost of one benchmark process, from its start (a fork, as asv's forkserver starts them) to ready for
its first timed run, warm-up excluded: over Spark Connect (a client of the run's server) and classic (a JVM of
its own), side by side. Also the interpreter's imports, which the forkserver pays once per run, not per process."""

import subprocess
import sys
import time

from harness import EngineUnavailable, config, data, services, trial

SETTINGS = config.RunSettings.from_env()
PROBE_SCALE = "1e4"  # fixed cost is overhead: measured on tiny data whatever the run's scales
PROBE_WORKLOAD = "groupby_sum_mean"


class ProcessFixedCost:
    number = 1
    repeat = 1
    rounds = 1
    timeout = 600

    def setup(self):
        if "cpu" not in SETTINGS.engines:
            raise NotImplementedError("the fixed cost is measured on the cpu engine, which this run does not use")
        data.ensure("groupby", config.scale_rows(PROBE_SCALE), SETTINGS.seed, SETTINGS.data_dir, progress=None)

    def track_connect_process_seconds(self):
        if "cpu" not in services.addresses():
            raise NotImplementedError("no Spark Connect server for the cpu engine in this run")
        return trial.fixed_cost(SETTINGS, "cpu", PROBE_WORKLOAD, PROBE_SCALE)

    def track_classic_process_seconds(self):
        from harness import session

        session.build_class_archive(SETTINGS, progress=None)
        classic = config.RunSettings(**{**SETTINGS.__dict__, "session": "classic"})
        try:
            return trial.fixed_cost(classic, "cpu", PROBE_WORKLOAD, PROBE_SCALE)
        except EngineUnavailable as err:
            raise NotImplementedError(str(err)) from None

    def track_interpreter_imports_seconds(self):
        began = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import harness.trial, pyspark.sql.connect.session"], check=True)
        return time.perf_counter() - began

    track_connect_process_seconds.unit = "seconds"
    track_classic_process_seconds.unit = "seconds"
    track_interpreter_imports_seconds.unit = "seconds"
