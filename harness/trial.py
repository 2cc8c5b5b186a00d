"""What one benchmark process runs: one engine x workload x scale, from session start to its record.

asv's classes in ``benchmarks/`` are thin wrappers around ``prepare_run`` (once per asv run) and ``Trial``
(once per benchmark process); the integration tests drive the same two, so what is tested is what runs.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from . import EngineUnavailable, HarnessError, cluster, cost, coverage, data, gpu, metrics, records, session, workloads
from .config import SUITE_PREFIX, RunSettings, Setting, SparkConf, recorded, scale_rows

RUN_DIR_ENV = "PREPBENCH_RUN_DIR"


def current_run_dir(settings: RunSettings) -> Path:
    """The run directory `bench` created for this asv run, or a new one when asv is run directly."""
    return Path(os.environ[RUN_DIR_ENV]) if os.environ.get(RUN_DIR_ENV) else records.new_run(settings)


def prepare_run(settings: RunSettings, progress=print) -> str:
    """Once per run: the run directory, every dataset the workloads need at every scale, the class archive."""
    run_dir = current_run_dir(settings)
    chosen = [workloads.get(name) for name in workloads.selected(settings.workloads)]
    tables = sorted({table for w in chosen for table in w.tables if table in data.TABLES})
    for scale in settings.scales:
        for table in tables:
            data.ensure(table, scale_rows(scale), settings.seed, settings.data_dir, progress)
    session.build_class_archive(settings, progress)
    return str(run_dir)


class OutputMismatch(HarnessError):
    """This engine's output differs from another engine's for the same workload and scale."""


class Trial:
    """Session, data, warm-up, checksum and one instrumented run outside the timed region; then timed runs;
    then the record.

    A timed run builds the workload's DataFrame and forces it, so work a workload does while building (an ML
    fit, say) is timed too. The instrumented run has NVML sampling beside it and its Spark jobs tagged: every
    metric besides time comes from it, once per engine, workload and scale, and asv's track benchmarks read
    them from the record instead of running the workload again. The record is written when the trial starts (status "running"), so a process
    that dies leaves a trace, and again when it ends: "ok", "skipped", "failed", or "mismatch" when the
    output differs from another engine's in the same run (that benchmark then fails instead of being timed).
    """

    def __init__(self, run_dir: str | Path, engine: str, workload: str, scale: str, settings: RunSettings,
                 variant: str = ""):
        """`variant` is one `key=value` setting on top of the configuration (the configuration sweep)."""
        self.workload = workloads.get(workload)
        self.run_dir, self.engine, self.scale = Path(run_dir), engine, scale
        self.path = records.record_path(run_dir, engine, workload, scale, variant)
        if variant:
            settings = dataclasses.replace(settings, overrides=(*settings.overrides, variant))
        rows = scale_rows(scale)
        merged = settings.spark_conf(engine)
        self.record = records.read_json(self.path) or {
            "schema": records.SCHEMA, "engine": engine, "workload": workload, "family": self.workload.family,
            "scale": scale, "variant": variant, "samples_s": [], "session_start_s": [], "warmup_s": [],
            "role": "gpu" if session.uses_plugin(merged) else "cpu",
            "host_profile": settings.host, "pricing": cost.pricing({key: s.value for key, s in merged.items()}),
        }
        self.samples: list[float] = []
        try:
            self.session = session.start(engine, settings)
        except EngineUnavailable as err:
            self._close("skipped", str(err))
            raise
        except Exception as err:
            self._close("failed", f"session did not start: {err}")
            raise
        self.record["session_start_s"].append(self.session.start_seconds)
        self.record["config"] = recorded(self.session.conf)
        self.record["sql_conf"] = dict(self.workload.sql_conf)
        self._save("running")
        try:
            spark = self.session.spark
            self._settings = workloads.sql_settings(spark, self.workload)
            self._settings.__enter__()  # for the life of this process: one workload per benchmark process
            self.tables = {t: spark.read.parquet(data.table_path(t, rows, settings.seed, settings.data_dir))
                           for t in self.workload.tables}
            self.record["rows"] = sum(data.table_rows(t, rows) or df.count() for t, df in self.tables.items())
            self.record["warmup_s"].append(self._force())
            if "checksum" not in self.record:
                self.record["checksum"] = workloads.checksum(self.workload.build(self.tables))
            if "spark_metrics" not in self.record:
                self._instrumented_run(merged)
        except Exception as err:
            self._close("failed", f"{type(err).__name__}: {err}")
            raise
        self._check_against_other_engines()
        self._save("running")

    def _force(self) -> float:
        began = time.perf_counter()
        figures = self.workload.force(self.workload.build(self.tables))
        elapsed = time.perf_counter() - began
        if figures:
            self.record["figures"] = figures
        return elapsed

    def _instrumented_run(self, conf: SparkConf) -> None:
        interval = float(conf.get(f"{SUITE_PREFIX}nvml.interval_s", Setting(str(gpu.DEFAULT_INTERVAL_S), "")).value)
        local = cluster.is_local(conf)  # the plugin then uses one GPU
        sampler = gpu.Sampler(interval_s=interval, first_only=local)
        with metrics.job_group(self.session.spark, self.workload.name) as group, sampler:
            self.record["instrumented_s"] = self._force()
        found = sampler.result()
        found["scope"] = ("this host, the GPU local mode uses" if local else "the driver's host only: "
                          "GPUs of executors on other hosts are not sampled")
        if found.get("energy_j") is not None and self.record["rows"]:
            found["energy_per_mrows_j"] = found["energy_j"] / self.record["rows"] * 1e6
        self.record["gpu_metrics"] = found
        self.record["spark_metrics"], plans = metrics.read(self.session.spark, group)
        if session.uses_plugin(self.session.conf):  # what really ran on the GPU, not what the plugin predicted
            self.record["planned_operators"] = coverage.executed_operators(plans)

    def _check_against_other_engines(self) -> None:
        for path in sorted(self.run_dir.glob(f"{self.workload.name}.*.{self.scale}*.json")):
            other = records.read_json(path)
            if path == self.path or not other or other.get("status") != "ok" or "checksum" not in other:
                continue
            problems = workloads.compare(other["checksum"], self.record["checksum"], self.workload.float_rel_tol)
            if problems:
                reason = f"output differs from the {other['engine']} engine's: " + "; ".join(problems)
                self._close("mismatch", reason)
                raise OutputMismatch(f"{self.workload.name} at {self.scale} on {self.engine}: {reason}")

    def run_once(self) -> float:
        try:
            elapsed = self._force()
        except Exception as err:
            self._close("failed", f"{type(err).__name__}: {err}")
            raise
        self.samples.append(elapsed)
        return elapsed

    def finish(self) -> dict:
        """Record the samples taken since the last call (asv calls teardown between its samples too)."""
        if self.record.get("status") in ("running", "ok"):
            self.record["samples_s"] += self.samples
            self.samples = []
            self.record["cost"] = run_cost(self.record)
            self.record["executors"] = cluster.executors(self.session.spark)  # where it ran, lost ones included
            self._save("ok")
        return self.record

    def _close(self, status: str, reason: str) -> None:
        self.record["reason"] = reason
        self._save(status)

    def _save(self, status: str) -> None:
        self.record["status"] = status
        records.write_json(self.path, self.record)


def run_cost(record: dict) -> dict:
    """This engine's cost per million rows at the median of its timed runs, priced as its role's instance."""
    prices = record["pricing"]
    price = prices[record["role"]]
    samples = record.get("samples_s") or []
    median = statistics.median(samples) if samples else None
    return {"instance": price.get("instance"), "nodes": prices["nodes"], "usd_per_hour": price.get("usd_per_hour"),
            "median_s": median, "missing": price.get("missing"),
            "cost_per_mrows_usd": cost.per_million_rows(prices["nodes"], price.get("usd_per_hour"), median, record.get("rows"))}


_prepared: dict[tuple, Trial] = {}


def prepared(run_dir, engine: str, workload: str, scale: str, settings: RunSettings, variant: str = "") -> Trial:
    """This process's trial for the benchmark, started once: asv_runner calls setup() again before every
    sample (timeit's setup), and the session, data and warm-up must not be redone each time."""
    key = (str(run_dir), engine, workload, scale, variant)
    if key not in _prepared:
        _prepared[key] = Trial(run_dir, engine, workload, scale, settings, variant)
    return _prepared[key]


def measured(run_dir, engine: str, workload: str, scale: str, settings: RunSettings, variant: str = "") -> dict:
    """The record with its instrumented run's metrics: read when this run already has them (the timing
    benchmark ran first), else made by preparing the trial here. Never a third run of the workload."""
    record = records.read_json(records.record_path(run_dir, engine, workload, scale, variant)) or {}
    if record.get("status") == "skipped":
        raise EngineUnavailable(record.get("reason") or "skipped")
    if "spark_metrics" in record or record.get("status") in ("failed", "mismatch"):
        return record
    return prepared(run_dir, engine, workload, scale, settings, variant).record


def metric_values(record: dict) -> dict[str, float | None]:
    """The figures asv tracks beside the times, None where one does not apply or was not measured."""
    samples = record.get("samples_s") or []
    gpu_found = record.get("gpu_metrics") or {}
    fallback = coverage.executed_fallback(record.get("planned_operators"))
    return {
        "rows_per_second": record["rows"] / statistics.median(samples) if samples and record.get("rows") else None,
        "cost_per_mrows_usd": (record.get("cost") or {}).get("cost_per_mrows_usd"),
        "gpu_util_mean_pct": gpu_found.get("util_mean_pct"),
        "gpu_util_p95_pct": gpu_found.get("util_p95_pct"),
        "gpu_memory_peak_bytes": gpu_found.get("memory_peak_bytes"),
        "energy_per_mrows_j": gpu_found.get("energy_per_mrows_j"),
        "fallback_pct": None if fallback is None else 100 * fallback,
    }


def fixed_cost_probe(workload: str, scale: str) -> None:
    """Everything a benchmark process does before its first timed run, in a throwaway run directory."""
    settings = RunSettings.from_env()
    with tempfile.TemporaryDirectory() as run_dir:
        Trial(run_dir, "cpu", workload, scale, settings)


if __name__ == "__main__":  # `python -m harness.trial WORKLOAD SCALE`: the fixed-cost benchmark's child
    fixed_cost_probe(sys.argv[1], sys.argv[2])
