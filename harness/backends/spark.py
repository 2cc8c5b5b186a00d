"""The Spark engines (CPU Spark, Comet, the RAPIDS Accelerator): one backend, engines differ by configuration.

A benchmark process is a Spark Connect client of its engine's server (started once per run by ``bench``),
a client of an endpoint a team already runs (``--remote``), or, with ``--no-connect`` or when no server was
started (plain ``asv run``), a classic session with a JVM of its own. Workloads build DataFrames the same way
in all three (every built-in one runs over Spark Connect). Metrics of the instrumented run come from the monitoring REST API, found by the run's
job tag; the executed plan from the same API says which operators the accelerator ran.
"""

from __future__ import annotations

import atexit
import gc
import time
import uuid
from pathlib import Path

from .. import HarnessError, cluster, coverage, fingerprint, services, session, workloads
from ..config import RunSettings, SparkConf, redact_text
from ..rest import Monitor, MonitorError

REPORTED_KEYS = ("spark.master", "spark.plugins", "spark.app.name", "spark.executor.instances", "spark.executor.cores",
                 "spark.executor.memory", "spark.executor.resource.gpu.amount", "spark.rapids.sql.enabled",
                 "spark.comet.enabled", "spark.comet.exec.enabled", "spark.shuffle.manager", "spark.sql.shuffle.partitions")


class SparkBackend:
    name = "spark"
    preload = ["pyspark.sql", "pyspark.ml", "pyspark.sql.connect.session"]  # imported by asv's forkserver, once

    def form(self, workload) -> str | None:
        return None  # every workload is defined by its Spark form

    def preflight(self, engine) -> SparkConf:
        return session.preflight(engine.name, engine.conf)

    def service(self, engine, conf: SparkConf, log_dir, settings):
        from .. import connect

        return connect.service(engine.name, conf, log_dir)

    def open(self, engine, conf: SparkConf, settings: RunSettings, address: dict | None, run_dir=None):
        """This process's session; a classic one writes its event log under `run_dir`, as a run's servers do."""
        began = time.perf_counter()
        if settings.remote:
            spark = session.remote(settings.remote)
            described = {"mode": "remote", "endpoint": redact_text(settings.remote)}
            ui = settings.remote_ui or _default_ui(settings.remote)
        elif address and settings.session == "connect":
            try:
                spark = session.remote(address["url"], local_server=True, token=address.get("token"))
            except Exception as err:  # the server is not answering: say which and where its log is
                raise HarnessError(f"the {engine.name} engine's Spark Connect server at {address['url']} did not "
                                   f"answer: {err}") from None
            described, ui = {"mode": "connect", "endpoint": address["url"]}, address["ui"]
            if not cluster.is_local(conf):  # a Connect session's Python UDFs import from its artifacts, not pyFiles
                spark.addArtifacts(str(cluster.code_archive()), pyfile=True)
        else:
            why = ("--no-connect" if settings.session == "classic" else "no Spark Connect server was started for "
                   "this run (run through `python -m harness bench` to use one)")
            if run_dir is not None:
                conf = session.with_event_log(conf, Path(run_dir) / session.EVENT_LOGS / engine.name)
            spark = session.classic(engine.name, conf)
            described, ui = {"mode": "classic", "why": why}, spark.sparkContext.uiWebUrl
        run = SparkRun(spark, Monitor(ui) if ui else None, described, engine)
        run.start_seconds = time.perf_counter() - began
        if described["mode"] == "remote":
            described["reported"] = run.reported_conf()
        return run


def _answers(url: str) -> bool:
    host, _, port = url.removeprefix("sc://").split("/", 1)[0].partition(":")
    return services.port_open(int(port or 15002), host)


def _default_ui(url: str) -> str:
    host = url.removeprefix("sc://").split("/", 1)[0].split(":", 1)[0]
    return f"http://{host}:4040"


class SparkRun:
    """One process's Spark session for one engine, as a trial drives it."""

    def __init__(self, spark, monitor: Monitor | None, described: dict, engine):
        self.spark, self.monitor, self.described, self.engine = spark, monitor, described, engine
        self.start_seconds = 0.0
        self._settings = None
        self._workload = None
        if described["mode"] != "classic":  # an ML model freed at interpreter exit would hang its gRPC call
            _open.append(self)

    def reported_conf(self) -> dict:
        """What the endpoint says about itself: its master, plugins and layout (redacted like our own)."""
        from ..config import redact

        found = {}
        for key in REPORTED_KEYS:
            try:
                found[key] = redact(key, self.spark.conf.get(key, None) or "")
            except Exception:  # a key the endpoint refuses to show (SQL_CONF_NOT_FOUND and the like)
                continue
        return {k: v for k, v in found.items() if v}

    def inputs(self, workload, paths: dict[str, str]) -> dict:
        return workloads.read_tables(self.spark, paths)

    def prepare(self, workload, tables) -> None:
        self._workload = workload  # cleaned up when the session closes
        self._settings = workloads.sql_settings(self.spark, workload)
        self._settings.__enter__()  # for the life of this process: one workload per benchmark process
        if workload.prepare:
            workload.prepare(self.spark, tables)

    def force(self, workload, tables) -> dict | None:
        return workload.force(workload.build(tables))

    def output(self, workload, tables, limit: int, expected_rows: int | None = None):
        """(fingerprint, rows, the rows when at most `limit`, None: the run and its fingerprint are one job, so
        the whole check counts as the check, none of it as a warm-up)."""
        return (*fingerprint.spark_output(workload.build(tables), limit, small=(expected_rows or 0) <= limit), None)

    def instrumented(self, workload, tables, label: str):
        """One run tagged for the REST API: (seconds, figures, Spark's metrics, the plan that ran)."""
        tag = f"prepbench-{label}-{uuid.uuid4().hex[:8]}"
        self.spark.addTag(tag)
        try:
            began = time.perf_counter()
            figures = self.force(workload, tables)
            seconds = time.perf_counter() - began
        finally:
            self.spark.removeTag(tag)
        if self.monitor is None:
            return seconds, figures, {"unavailable": "no monitoring REST API for this session"}, {}
        try:
            metrics, plans = self.monitor.run(tag)
        except MonitorError as err:
            return seconds, figures, {"unavailable": str(err)}, {}
        return seconds, figures, metrics, coverage.executed_plan(self.engine.conf, plans)

    def executors(self) -> list[dict]:
        try:
            return self.monitor.executors() if self.monitor else []
        except MonitorError:
            return []

    def cleanup(self, workload) -> None:
        if workload.cleanup:
            workload.cleanup(self.spark)

    def close(self) -> None:
        """Release this client's server-side session (and ML models' state) while the server still answers."""
        if self.described["mode"] == "classic" or not _answers(self.described["endpoint"]):
            return  # a server that went away first holds nothing of ours any more
        gc.collect()
        try:
            if self._workload is not None:
                self.cleanup(self._workload)  # its tear-down statements, and what it left in the server's catalog
        except Exception:
            pass  # a tear-down statement that fails fails no benchmark: it ran after the last timed run
        try:
            self.spark.stop()
        except Exception:
            pass  # it went away in the meantime


_open: list[SparkRun] = []  # this process's Spark Connect sessions, closed before it exits


@atexit.register
def close_all() -> None:
    """Close every Spark Connect session this process opened (before the servers stop, in the tests)."""
    while _open:
        _open.pop().close()


BACKEND = SparkBackend()

