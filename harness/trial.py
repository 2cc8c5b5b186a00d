"""What one benchmark process runs: one engine x workload x scale, from session start to its record.

asv's classes in ``benchmarks/`` are thin wrappers around ``prepare_run`` (once per asv run) and ``Trial``
(once per benchmark process); the integration tests drive the same two, so what is tested is what runs.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

from . import EngineUnavailable, HarnessError, cluster, coverage, data, records, session, workloads
from .config import RunSettings, recorded, scale_rows

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
    """Session, data, warm-up and checksum outside the timed region; then timed runs; then the record.

    A timed run builds the workload's DataFrame and forces it, so work a workload does while building (an ML
    fit, say) is timed too. The record is written when the trial starts (status "running"), so a process
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
        self.record = records.read_json(self.path) or {
            "schema": records.SCHEMA, "engine": engine, "workload": workload, "family": self.workload.family,
            "scale": scale, "variant": variant, "samples_s": [], "session_start_s": [], "warmup_s": [],
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
            if session.uses_plugin(self.session.conf):  # what the plugin really planned, not what it predicted
                plan = self.workload.build(self.tables)._jdf.queryExecution().executedPlan().toString()
                self.record["planned_operators"] = coverage.planned_operators(plan)
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
            self.record["executors"] = cluster.executors(self.session.spark)  # where it ran, lost ones included
            self._save("ok")
        return self.record

    def _close(self, status: str, reason: str) -> None:
        self.record["reason"] = reason
        self._save(status)

    def _save(self, status: str) -> None:
        self.record["status"] = status
        records.write_json(self.path, self.record)


_prepared: dict[tuple, Trial] = {}


def prepared(run_dir, engine: str, workload: str, scale: str, settings: RunSettings, variant: str = "") -> Trial:
    """This process's trial for the benchmark, started once: asv_runner calls setup() again before every
    sample (timeit's setup), and the session, data and warm-up must not be redone each time."""
    key = (str(run_dir), engine, workload, scale, variant)
    if key not in _prepared:
        _prepared[key] = Trial(run_dir, engine, workload, scale, settings, variant)
    return _prepared[key]


def fixed_cost_probe(workload: str, scale: str) -> None:
    """Everything a benchmark process does before its first timed run, in a throwaway run directory."""
    settings = RunSettings.from_env()
    with tempfile.TemporaryDirectory() as run_dir:
        Trial(run_dir, "cpu", workload, scale, settings)


if __name__ == "__main__":  # `python -m harness.trial WORKLOAD SCALE`: the fixed-cost benchmark's child
    fixed_cost_probe(sys.argv[1], sys.argv[2])
