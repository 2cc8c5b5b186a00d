"""Fixed cost of one benchmark process: interpreter, imports, session start, data read, warm-up."""

import subprocess
import sys
import time

from harness import config, data, session, workloads

SETTINGS = config.RunSettings.from_env()
PROBE_SCALE = "1e4"  # fixed cost is overhead: measured on tiny data whatever the run's scales
PROBE_WORKLOAD = "groupby_sum_mean"


class ProcessFixedCost:
    number = 1
    repeat = 1
    rounds = 1
    timeout = 600

    def setup(self):
        for table in workloads.get(PROBE_WORKLOAD).tables:
            data.ensure(table, config.scale_rows(PROBE_SCALE), SETTINGS.seed, SETTINGS.data_dir, progress=None)
        session.build_class_archive(SETTINGS, progress=None)

    def track_cpu_process_seconds(self):
        began = time.perf_counter()
        subprocess.run([sys.executable, "-m", "harness.trial", PROBE_WORKLOAD, PROBE_SCALE], check=True)
        return time.perf_counter() - began

    track_cpu_process_seconds.unit = "seconds"
