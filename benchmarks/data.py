"""Data generation speed: the groupby table, Parquet written included (the cache is bypassed)."""

import shutil
import tempfile
import time
from pathlib import Path

from harness import config, data

SETTINGS = config.RunSettings.from_env()


class GenerateGroupby:
    params = [list(SETTINGS.scales)]
    param_names = ["scale"]
    number = 1
    repeat = (1, 3, 60.0)
    rounds = 1
    warmup_time = 0
    timeout = 1800

    def setup(self, scale):
        self.dir = Path(tempfile.mkdtemp(prefix="prepbench-gen-"))

    def teardown(self, scale):
        shutil.rmtree(self.dir, ignore_errors=True)

    def _generate(self, scale):
        data.generate("groupby", config.scale_rows(scale), SETTINGS.seed, self.dir / "groupby", progress=None)

    def time_generate(self, scale):
        self._generate(scale)

    def track_rows_per_second(self, scale):
        began = time.perf_counter()
        self._generate(scale)
        return config.scale_rows(scale) / (time.perf_counter() - began)

    track_rows_per_second.unit = "rows/s"
