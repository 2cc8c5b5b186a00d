"""Dask DataFrame on a local cluster of every core, and dask-cudf (the cuDF backend, one worker per GPU).

A run starts the cluster once per engine (``python -m harness.backends.dask_frames``: a scheduler and its
workers, warmed up with the libraries they import) and hands its address to the benchmark processes, which
connect as clients; without one (plain ``asv run``), the work runs on Dask's threads in the benchmark
process. The timed work reads the workload's Parquet tables (``dd.read_parquet``) and computes its dataframe
form, kept on the workers (``persist``) and waited for, as Spark's noop write keeps nothing. Dictionary-encoded
strings are read as plain strings: Dask gives each file its own categories, which sorting and merging refuse.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

from .. import fingerprint, services
from .pandas_frames import ACCELERATOR_KEY, gpu_preflight

WORKERS_KEY = "prepbench.dask.workers"  # default: one per core (CPU) or per GPU (dask-cudf)
START_TIMEOUT_S = 120


class DaskBackend:
    name = "dask"
    preload = ["dask.dataframe", "distributed"]  # imported by asv's forkserver, once

    def form(self, workload) -> str | None:
        if not workload.frame:
            return "it is defined by Spark's APIs and has no dataframe form"
        if workload.frame_eager_only:
            return f"its dataframe form needs eager pandas: {workload.frame_eager_only}"
        return None

    def preflight(self, engine):
        if engine.value(ACCELERATOR_KEY) == "cudf":
            gpu_preflight(engine, "dask_cudf", "gpu")
        return engine.conf

    def service(self, engine, conf, log_dir: Path) -> services.Service:
        address_file = log_dir / f".{engine.name}-scheduler"
        command = [sys.executable, "-m", "harness.backends.dask_frames", str(address_file),
                   engine.value(WORKERS_KEY, ""), engine.value(ACCELERATOR_KEY, "none")]
        return services.Service(f"Dask cluster for the {engine.name} engine", command, dict(os.environ),
                                log_dir / f"{engine.name}-dask.log", ready=address_file.is_file,
                                address=lambda: {"scheduler": address_file.read_text().strip()},
                                timeout_s=START_TIMEOUT_S, cleanup=lambda: address_file.unlink(missing_ok=True))

    def open(self, engine, conf, settings, address, run_dir=None):
        return DaskRun(engine, address)


class DaskRun:
    def __init__(self, engine, address: dict | None):
        began = time.perf_counter()
        import dask
        import dask.dataframe as dd

        self.dd = dd
        if engine.value(ACCELERATOR_KEY) == "cudf":
            dask.config.set({"dataframe.backend": "cudf"})
        self.client = None
        if address:
            from distributed import Client

            self.client = Client(address["scheduler"], set_as_default=True)
            self.described = {"mode": "cluster", "endpoint": address["scheduler"],
                              "workers": len(self.client.scheduler_info()["workers"])}
        else:
            self.described = {"mode": "threads", "why": "no Dask cluster was started for this run (run through "
                              "`python -m harness bench` to use one)"}
        self.described["dask"] = dask.__version__
        self.start_seconds = time.perf_counter() - began

    def inputs(self, workload, paths: dict[str, str]) -> dict[str, str]:
        return paths

    def prepare(self, workload, paths) -> None:
        return None

    def _lazy(self, workload, paths):
        tables = {}
        for table, path in paths.items():
            df = self.dd.read_parquet(path)
            categorical = [c for c, t in df.dtypes.items() if str(t) == "category"]
            tables[table] = df.astype({c: "string" for c in categorical}) if categorical else df
        return workload.frame(tables)

    def force(self, workload, paths) -> dict | None:
        result = self._lazy(workload, paths)
        if self.client is not None:
            from distributed import wait

            kept = self.client.persist(result)
            wait(kept)
            del kept
        else:
            result.persist()
        return None

    def output(self, workload, paths, limit: int):
        result = self._lazy(workload, paths).compute()
        if hasattr(result, "to_pandas"):  # cuDF partitions
            result = result.to_pandas()
        return fingerprint.frame_output(result, limit)

    def instrumented(self, workload, paths, label: str):
        began = time.perf_counter()
        self.force(workload, paths)
        return time.perf_counter() - began, None, {}, {}

    def executors(self) -> list[dict]:
        if self.client is None:
            return []
        return [{"id": info.get("name"), "address": address, "threads": info.get("nthreads")}
                for address, info in self.client.scheduler_info()["workers"].items()]

    def cleanup(self, workload) -> None:
        return None


BACKEND = DaskBackend()


def _serve(address_file: str, workers: str, accelerator: str) -> None:
    """The cluster's own process: start it, warm its workers, write its address, wait for SIGTERM."""
    from distributed import Client

    if accelerator == "cudf":
        from dask_cuda import LocalCUDACluster

        cluster = LocalCUDACluster(n_workers=int(workers) if workers else None, threads_per_worker=1,
                                   dashboard_address=None, host=services.LOOPBACK, pre_import="cudf")
    else:
        from distributed import LocalCluster

        cluster = LocalCluster(n_workers=int(workers) if workers else os.cpu_count(), threads_per_worker=1,
                               processes=True, dashboard_address=None, host=services.LOOPBACK)
    with Client(cluster) as client:  # the first compute on cold workers pays their imports
        client.run(lambda: [__import__(m) for m in ("pandas", "pyarrow.parquet", "dask.dataframe")])
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    partial = Path(f"{address_file}.partial")
    partial.write_text(cluster.scheduler_address)
    os.replace(partial, address_file)
    print(json.dumps({"scheduler": cluster.scheduler_address, "workers": len(cluster.workers)}), flush=True)
    while not stop.wait(1):
        pass
    cluster.close()


if __name__ == "__main__":
    _serve(*sys.argv[1:4])
