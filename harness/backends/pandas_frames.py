"""pandas, and cuDF through ``cudf.pandas``: a workload's dataframe form in one process's memory.

The timed work is what a pandas user's job does: read the workload's Parquet tables (``pd.read_parquet``)
and compute its dataframe form. Under the ``cudf`` engine (``prepbench.dataframe.accelerator cudf``) the same
pandas code runs with ``cudf.pandas`` installed: ``pd.read_parquet`` reads into GPU memory and each operation
runs on the GPU where cuDF supports it, falling back to pandas where it does not. Outputs are brought back
to pandas for the fingerprint, outside the timed region.
"""

from __future__ import annotations

import importlib
import importlib.util
import time

from .. import EngineUnavailable, fingerprint, gpu

ACCELERATOR_KEY = "prepbench.dataframe.accelerator"


def gpu_preflight(engine, module: str, extra: str) -> None:
    """A GPU dataframe engine needs its package (not installed by default: its wheels need an NVIDIA driver)
    and a GPU; say which is missing, before anything is imported."""
    if importlib.util.find_spec(module) is None:
        raise EngineUnavailable(f"the '{engine.name}' engine needs {module}, which is not installed: "
                                f"pip install -e '.[{extra}]' on a host with an NVIDIA GPU (CUDA 13 driver, 580+)")
    gpus, problem = gpu.probe()
    if problem:
        raise EngineUnavailable(f"the '{engine.name}' engine runs on an NVIDIA GPU: {problem}")


class PandasBackend:
    name = "pandas"
    preload = ["pandas", "pyarrow.parquet"]  # imported by asv's forkserver, once

    def form(self, workload) -> str | None:
        return None if workload.frame else "it is defined by Spark's APIs and has no dataframe form"

    def preflight(self, engine):
        if engine.value(ACCELERATOR_KEY) == "cudf":
            gpu_preflight(engine, "cudf", "gpu")
        return engine.conf

    def service(self, engine, conf, log_dir, settings):
        return None  # everything runs in the benchmark process

    def open(self, engine, conf, settings, address, run_dir=None):
        return PandasRun(engine)


class PandasRun:
    def __init__(self, engine):
        began = time.perf_counter()
        self.accelerated = engine.value(ACCELERATOR_KEY) == "cudf"
        if self.accelerated:
            import cudf.pandas

            cudf.pandas.install()  # later imports of pandas get the proxy module
        self.pd = importlib.import_module("pandas")
        self.described = {"mode": "cudf.pandas" if self.accelerated else "pandas", "pandas": self.pd.__version__}
        self.start_seconds = time.perf_counter() - began

    def inputs(self, workload, paths: dict[str, str]) -> dict[str, str]:
        return paths  # the tables are read in the timed region, as the user's job would

    def prepare(self, workload, paths) -> None:
        return None

    def _compute(self, workload, paths):
        return workload.frame({table: self.pd.read_parquet(path) for table, path in paths.items()})

    def force(self, workload, paths) -> dict | None:
        self._compute(workload, paths)
        return None

    def output(self, workload, paths, limit: int, expected_rows: int | None = None):
        """(fingerprint, rows, the rows when at most `limit`, the seconds of the run itself: the warm-up)."""
        began = time.perf_counter()
        result = self._compute(workload, paths)
        ran = time.perf_counter() - began
        if self.accelerated:
            result = result.as_cpu_object()  # a cudf.pandas proxy, back to pandas
        return (*fingerprint.frame_output(result, limit), ran)

    def instrumented(self, workload, paths, label: str):
        began = time.perf_counter()
        self.force(workload, paths)
        return time.perf_counter() - began, None, {}, {}

    def executors(self) -> list[dict]:
        return []

    def cleanup(self, workload) -> None:
        return None


BACKEND = PandasBackend()
