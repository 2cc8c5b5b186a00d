"""Dask DataFrame on a local cluster of every core, and dask-cudf (the cuDF backend, one worker per GPU).

A run starts the cluster once per engine (``python -m harness.backends.dask_frames``: a scheduler and its
workers, warmed up with the libraries they import), secured with TLS and a certificate made for it alone
(``Security.temporary``): only clients holding the run's credentials, which ``bench`` hands to its benchmark
processes in their environment (never in a file others can read, never recorded), can submit work. With
``--dask-scheduler`` the run uses a cluster a team already runs instead (its TLS credentials, if any, from
Dask's own configuration), after checking that its workers can read the datasets. Without either (plain
``asv run``), the work runs on Dask's threads in the benchmark process. The timed work reads the workload's Parquet tables (``dd.read_parquet``) and computes its dataframe
form, kept on the workers (``persist``) and waited for, as Spark's noop write keeps nothing. Dictionary-encoded
strings are read as plain strings: Dask gives each file its own categories, which sorting and merging refuse.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import tempfile
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

    def service(self, engine, conf, log_dir: Path, settings) -> services.Service | dict:
        if settings.dask_scheduler:  # the team's own cluster: checked, and its address handed over
            address = existing(settings.dask_scheduler)
            check_workers_read(address, _dataset_paths(settings))
            return address
        private = Path(tempfile.mkdtemp(prefix="prepbench-dask-"))  # 0700: the cluster's credentials pass here once
        address_file = private / "scheduler.json"
        command = [sys.executable, "-m", "harness.backends.dask_frames", str(address_file),
                   engine.value(WORKERS_KEY, ""), engine.value(ACCELERATOR_KEY, "none")]
        return services.Service(f"Dask cluster for the {engine.name} engine", command, dict(os.environ),
                                log_dir / f"{engine.name}-dask.log", ready=address_file.is_file,
                                address=lambda: json.loads(address_file.read_text()), timeout_s=START_TIMEOUT_S,
                                cleanup=lambda: shutil.rmtree(private, ignore_errors=True))

    def open(self, engine, conf, settings, address, run_dir=None):
        if address is None and settings.dask_scheduler:
            address = existing(settings.dask_scheduler)
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
            self.client = connect(address)
            workers = self.client.scheduler_info()["workers"]
            self.described = {"mode": "existing cluster" if address.get("existing") else "cluster",
                              "endpoint": address.get("scheduler") or address.get("scheduler_file"),
                              "workers": len(workers), "worker_resources": worker_resources(workers)}
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

    def _persisted(self, workload, paths):
        """The workload's result computed and kept on the workers, waited for."""
        result = self._lazy(workload, paths)
        if self.client is None:
            return result.persist()
        from distributed import wait

        kept = self.client.persist(result)
        wait(kept)
        return kept

    def force(self, workload, paths) -> dict | None:
        self._persisted(workload, paths)  # released at once
        return None

    def output(self, workload, paths, limit: int, expected_rows: int | None = None):
        """A small output (expected to have at most `limit` rows) is brought here and fingerprinted; any other is
        kept on the workers, as the timed runs keep it, and fingerprinted there, partition by partition (10M
        rows brought here took 50 s; only the partial sums travel), then brought here only if it turned out
        small. The seconds the run itself took come back too: it is this benchmark's warm-up."""
        import dask

        began = time.perf_counter()
        if (expected_rows or 0) <= limit:
            result = self._lazy(workload, paths).compute()  # cuDF: frame_table converts
            ran = time.perf_counter() - began
            return (*fingerprint.frame_output(result, limit), ran)
        kept = self._persisted(workload, paths)
        ran = time.perf_counter() - began
        like = fingerprint.frame_table(kept._meta_nonempty).schema
        parts = [dask.delayed(fingerprint.frame_part)(partition, like) for partition in kept.to_delayed()]
        try:
            found = self.client.compute(parts, sync=True) if self.client else dask.compute(*parts)
        except ModuleNotFoundError:  # a team's workers without this suite installed: fingerprinted here
            return (*fingerprint.frame_output(kept.compute(), limit), ran)
        found = [part for part in found if part is not None]
        fingerprinted = fingerprint.merged(found) if found else fingerprint.table_fingerprint(like.empty_table())
        table = fingerprint.frame_table(kept.compute()) if fingerprinted["rows"] <= limit else None
        return fingerprinted, fingerprinted["rows"], table, ran

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


def _dataset_paths(settings) -> list[str]:
    from .. import data, workloads
    from ..config import AS_IS, scale_rows

    chosen = [workloads.get(w) for w in workloads.selected(settings.workloads)]
    return sorted({str(data.table_path(t, None if s == AS_IS else scale_rows(s), settings.seed, settings.data_dir))
                   for w in chosen if w.frame for t in w.tables for s in settings.scales if w.runs_at(s)})


def existing(scheduler: str) -> dict:
    """The address of a Dask cluster a team already runs: tcp:// or tls://HOST:PORT, or a scheduler file."""
    if "://" in scheduler:
        return {"scheduler": scheduler, "existing": True}
    return {"scheduler_file": str(Path(scheduler).expanduser()), "existing": True}


def connect(address: dict):
    """A client of the run's cluster (with the run's TLS credentials) or of a team's (with Dask's configuration)."""
    from distributed import Client
    from distributed.security import Security

    if address.get("tls_key"):
        security = Security(tls_ca_file=address["tls_ca"], tls_client_cert=address["tls_cert"],
                            tls_client_key=address["tls_key"], require_encryption=True)
    else:
        security = Security()  # the distributed.comm.tls.* settings of Dask's configuration, if any
    if address.get("scheduler_file"):
        return Client(scheduler_file=address["scheduler_file"], security=security, set_as_default=True)
    return Client(address["scheduler"], security=security, set_as_default=True)


def worker_resources(workers: dict) -> list[dict]:
    """What each worker offers: threads, memory and GPUs (where it reports them)."""
    return [{"address": address, "threads": info.get("nthreads"), "memory_bytes": info.get("memory_limit"),
             "gpus": len((info.get("gpu") or {}).get("name") or []) if isinstance(info.get("gpu"), dict) else
             (info.get("resources") or {}).get("GPU", 0)} for address, info in sorted(workers.items())]


def check_workers_read(address: dict, paths: list[str]) -> None:
    """Every worker of the cluster must read the datasets where the run wrote them; say which cannot, and why."""
    from .. import HarnessError

    client = connect(address)
    try:
        seen = client.run(_readable, paths)
    except Exception as err:
        raise HarnessError(f"could not reach the Dask cluster at {address.get('scheduler') or address.get('scheduler_file')}"
                           f": {err}") from None
    finally:
        client.close()
    missing = {worker: found for worker, found in seen.items() if found}
    if missing:
        worker, found = next(iter(missing.items()))
        raise HarnessError(f"{len(missing)} worker(s) of the Dask cluster cannot read the datasets, e.g. {worker}: "
                           f"{found[0]}; put them where every worker reads them (--data-dir a shared URI such as "
                           "s3://, hdfs:// or file:// on a shared mount)")


def _readable(paths: list[str]) -> list[str]:
    """On a worker: the datasets it cannot read, with why."""
    import pyarrow.fs as pafs

    problems = []
    for path in paths:
        try:
            fs, inner = pafs.FileSystem.from_uri(path) if "://" in path else (pafs.LocalFileSystem(), path)
            if fs.get_file_info(inner).type == pafs.FileType.NotFound:
                problems.append(f"{path} does not exist there")
        except Exception as err:  # no such filesystem, no credentials: whatever the worker says
            problems.append(f"{path}: {err}")
    return problems


def _serve(address_file: str, workers: str, accelerator: str) -> None:
    """The cluster's own process: start it behind TLS with a certificate of its own, warm its workers, hand its
    address and credentials over in a private file, wait for SIGTERM."""
    from distributed import Client
    from distributed.security import Security

    security = Security.temporary()  # a self-signed certificate for this cluster alone, in memory
    if accelerator == "cudf":
        from dask_cuda import LocalCUDACluster

        cluster = LocalCUDACluster(n_workers=int(workers) if workers else None, threads_per_worker=1,
                                   dashboard_address=None, host=services.LOOPBACK, pre_import="cudf",
                                   security=security, protocol="tls")
    else:
        from distributed import LocalCluster

        cluster = LocalCluster(n_workers=int(workers) if workers else os.cpu_count(), threads_per_worker=1,
                               processes=True, dashboard_address=None, host=services.LOOPBACK, security=security,
                               protocol="tls")
    with Client(cluster, security=security) as client:  # the first compute on cold workers pays their imports
        client.run(lambda: [__import__(m) for m in ("pandas", "pyarrow.parquet", "dask.dataframe")])
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    partial = Path(f"{address_file}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({"scheduler": cluster.scheduler_address, "tls_ca": security.tls_ca_file,
                   "tls_cert": security.tls_client_cert, "tls_key": security.tls_client_key}, out)
    os.replace(partial, address_file)
    print(json.dumps({"scheduler": cluster.scheduler_address, "workers": len(cluster.workers)}), flush=True)
    while not stop.wait(1):
        pass
    cluster.close()


if __name__ == "__main__":
    _serve(*sys.argv[1:4])
