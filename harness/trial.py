"""What one benchmark process runs: one engine x workload x scale, from its session to its record.

asv's classes in ``benchmarks/`` are thin wrappers around ``prepare_run`` (once per asv run) and ``Trial``
(once per benchmark process); the integration tests drive the same two, so what is tested is what runs.
The trial is the same for every engine: its backend (``harness/backends/``) supplies the session.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from pathlib import Path

from . import EngineUnavailable, HarnessError, cost, data, gpu, records, results, services, workloads
from .coverage import first_line
from .backends import Engine
from .config import AS_IS, SUITE_PREFIX, RunSettings, redact_text, scale_rows
from .fingerprint import ROW_LIMIT

RUN_DIR_ENV = "PREPBENCH_RUN_DIR"
OUTPUTS = "outputs"  # sorted small outputs, for row-by-row comparison (not committed: see .gitignore)


class OutputMismatch(HarnessError):
    """This engine's output differs from another engine's for the same workload and scale."""


class NotApplicable(NotImplementedError):
    """A workload at a scale it does not run at (a user dataset runs at as-is only): asv shows n/a, no record."""


def current_run_dir(settings: RunSettings) -> Path:
    """The run directory `bench` created for this asv run, or a new one when asv is run directly."""
    return Path(os.environ[RUN_DIR_ENV]) if os.environ.get(RUN_DIR_ENV) else records.new_run(settings)


def prepare_run(settings: RunSettings, progress=print) -> str:
    """Once per run: the run directory and every generated dataset the workloads need at every scale."""
    run_dir = current_run_dir(settings)
    chosen = [workloads.get(name) for name in workloads.selected(settings.workloads)]
    for scale in settings.scales:
        if scale == AS_IS:
            continue
        for table in sorted({data.derived_tables()[t].source if t in data.derived_tables() else t
                             for w in chosen for t in w.tables if t not in data.user_datasets()}):
            data.ensure(table, scale_rows(scale), settings.seed, settings.data_dir, progress)
    return str(run_dir)


def scales(settings: RunSettings) -> list[str]:
    """The run's scales, and as-is when a chosen workload reads only the user's own datasets (it runs once)."""
    chosen = [workloads.get(name) for name in workloads.selected(settings.workloads)]
    extra = [AS_IS] if AS_IS not in settings.scales and any(w.on_user_data for w in chosen) else []
    return [*settings.scales, *extra]


def preload(settings: RunSettings) -> None:
    """Import what the run's engines need, once, in asv's forkserver: its forks then start with them loaded.
    Nothing is started (no JVM, no gRPC channel, no CUDA context), so forking stays safe."""
    import importlib

    from .backends import Engine

    modules = {m for engine in settings.engines for m in Engine.of(engine, settings).backend_module.preload}
    for module in sorted(modules):
        try:
            importlib.import_module(module)
        except ImportError:
            pass  # the engine's own check says what is missing, when its benchmark runs


def table_paths(workload, scale: str, settings: RunSettings, spark=None) -> dict[str, str]:
    """Where each of the workload's tables is read from at this scale. A derived table missing from the cache
    is written with `spark`, if given (a Spark engine's trial); otherwise it must exist already."""
    rows = None if scale == AS_IS else scale_rows(scale)
    paths = {}
    for table in workload.tables:
        if table in data.derived_tables() and spark is not None:
            data.ensure_derived(table, rows, settings.seed, settings.data_dir, spark, progress=None)
        paths[table] = data.table_path(table, rows, settings.seed, settings.data_dir)
    return paths


class Trial:
    """Session, inputs, the output's fingerprint (which runs the whole workload first, so it is also the warm-up)
    and one instrumented run outside the timed region; then timed runs; then the record.

    A timed run builds the workload's result and forces it, so work a workload does while building (an ML
    fit, say) is timed too. The instrumented run has NVML sampling beside it (GPU engines) and its Spark jobs
    tagged: every metric besides time comes from it, once per engine, workload and scale, and asv's track
    benchmarks read them from the record. The record is written when the trial starts (status "running"),
    so a process that dies leaves a trace, and again when it ends: "ok", "skipped" (the engine cannot run
    here), "undefined" (the engine has no form of the workload), "failed", or "mismatch" when the output
    differs from another engine's in the same run (that benchmark then fails instead of being timed).
    """

    def __init__(self, run_dir: str | Path, engine: str, workload: str, scale: str, settings: RunSettings,
                 variant: str = ""):
        """`variant` is one `key=value` setting on top of the configuration (the configuration sweep)."""
        began = time.perf_counter()
        self.workload = workloads.get(workload)
        if not self.workload.runs_at(scale):
            raise NotApplicable(f"{workload} reads " + ("only your own datasets: it runs at scale as-is" if
                                                        self.workload.on_user_data else "generated tables: as-is is for your own datasets"))
        self.run_dir, self.scale, self.settings = Path(run_dir), scale, settings
        self.engine = Engine.of(engine, settings, variant)
        self.path = results.record_path(run_dir, engine, workload, scale, variant)
        self.record = self._existing() or new_record(self.engine, self.workload, scale, settings)
        self.samples: list[float] = []
        backend = self.engine.backend_module
        undefined = backend.form(self.workload)
        if undefined:
            self._close("undefined", f"the {engine} engine has no form of {workload}: {undefined}")
            raise EngineUnavailable(self.record.reason)
        try:
            applied = backend.preflight(self.engine)
        except EngineUnavailable as err:
            self._close("skipped", str(err))
            raise
        except HarnessError as err:
            self._close("failed", str(err))
            raise
        self.record.config = self.engine.recorded(applied)
        self._save("running")
        try:
            self.session = backend.open(self.engine, applied, settings, services.addresses().get(engine), self.run_dir)
            self.record.session = self.session.described
            spark = getattr(self.session, "spark", None)
            paths = table_paths(self.workload, scale, settings, spark)
            self.inputs = self.session.inputs(self.workload, paths)
            self.record.rows = self.record.rows or sum(data.table_rows(t, None if scale == AS_IS else scale_rows(scale))
                                                       or data.dataset_rows(p) for t, p in paths.items())
            self.session.prepare(self.workload, self.inputs)
            self.record.session_start_s.append(time.perf_counter() - began)
            if self.record.fingerprint is None:  # the output check runs the whole workload first: the warm-up
                checked = time.perf_counter()
                ran = self._fingerprint()
                if ran is not None:  # the run was timed apart from its fingerprint: it counts as the warm-up
                    self.record.warmup_s.append(ran)
                self.record.fingerprint_s = time.perf_counter() - checked - (ran or 0.0)
            else:  # a later process of the same benchmark: its output is checked already, so warm up plainly
                self.record.warmup_s.append(self._force())
            if self.record.instrumented_s is None and not settings.smoke:
                self._instrumented_run()
        except Exception as err:
            gone = services.not_answering(services.addresses().get(engine))
            self._close("failed", f"{gone}: {first_line(err)}" if gone else f"{type(err).__name__}: {first_line(err)}")
            if gone:
                raise HarnessError(self.record.reason) from None
            raise
        self._check_against_the_reference()
        self._save("running")

    def _existing(self) -> results.Record | None:
        """The record another process of the same benchmark wrote in this run: its samples add up."""
        data_ = records.read_json(self.path)
        try:
            return results.Record.from_json(data_, self.path.name) if data_ else None
        except results.RecordError:
            return None

    def _force(self) -> float:
        began = time.perf_counter()
        figures = self.session.force(self.workload, self.inputs)
        elapsed = time.perf_counter() - began
        if figures:
            self.record.figures.update(figures)
        return elapsed

    def _fingerprint(self) -> float | None:
        """Check the output; the seconds of the run it checked, where the session timed that apart."""
        limit = int(self.engine.value(f"{SUITE_PREFIX}compare.max_rows", str(ROW_LIMIT)))
        found, output_rows, table, ran = self.session.output(self.workload, self.inputs, limit, self.expected_output_rows())
        self.record.fingerprint, self.record.output_rows = found, output_rows
        if table is not None:
            import pyarrow.parquet as pq

            relative = Path(OUTPUTS) / f"{self.path.stem}.parquet"
            target = self.run_dir / relative
            target.parent.mkdir(exist_ok=True)
            partial = target.with_name(f".{target.name}.{os.getpid()}")
            pq.write_table(table, partial)
            os.replace(partial, target)
            self.record.rows_file = str(relative)
        return ran

    def expected_output_rows(self) -> int | None:
        """At most how many rows the output should have, which picks how it is checked (collected at once, or
        fingerprinted where it is): its inputs' rows, or fewer where this run has the output at a smaller scale,
        grown in proportion to the inputs. An output that outgrows the estimate is still checked in full."""
        smaller = [r for r in self._workload_records() if r.output_rows is not None and r.rows
                   and self.record.rows and r.rows < self.record.rows]
        if not smaller:
            return self.record.rows
        nearest = max(smaller, key=lambda r: r.rows)
        return min(self.record.rows, math.ceil(nearest.output_rows * self.record.rows / nearest.rows))

    def _workload_records(self) -> list[results.Record]:
        """The finished records of this workload and variant in this run, at any scale and engine, but this one."""
        found = []
        for path in sorted(self.run_dir.glob(f"{self.workload.name}.*.json")):
            try:
                other = results.Record.from_json(records.read_json(path), path.name) if path != self.path else None
            except results.RecordError:
                continue
            if other is not None and (other.workload, other.variant) == (self.workload.name, self.engine.variant) \
                    and other.status == "ok" and other.fingerprint:
                found.append(other)
        return found

    def _instrumented_run(self) -> float:
        """One run tagged for Spark's monitoring API, with NVML sampling beside it on a GPU engine; its seconds."""
        sampled = self.engine.role == "gpu"
        interval = float(self.engine.value(f"{SUITE_PREFIX}nvml.interval_s", str(gpu.DEFAULT_INTERVAL_S)))
        local = self.engine.value("spark.master", "local[*]").startswith("local") or self.engine.backend != "spark"
        sampler = gpu.Sampler(interval_s=interval, first_only=local) if sampled else None
        with sampler or contextlib.nullcontext():
            seconds, figures, metrics, plan = self.session.instrumented(self.workload, self.inputs, self.workload.name)
        self.record.instrumented_s, self.record.spark_metrics, self.record.plan = seconds, metrics or {}, plan or {}
        if figures:
            self.record.figures.update(figures)
        if sampler:
            found = sampler.result()
            found["scope"] = ("this host, the GPU local mode uses" if local else "the driver's host only: "
                              "GPUs of executors on other hosts are not sampled")
            if found.get("energy_j") is not None and self.record.rows:
                found["energy_per_mrows_j"] = found["energy_j"] / self.record.rows * 1e6
            self.record.gpu_metrics = found
        return seconds

    def _check_against_the_reference(self) -> None:
        """Compare this output with the run's reference engine's (CPU Spark's, where it already finished) and
        fail now if it differs: a wrong output is never timed as if it were fine. The reference itself is never
        flagged, whichever engine ran first; the analysis compares every output with it at the end."""
        from .analysis import differences, reference_rank

        others = [other for other in self._workload_records() if other.scale == self.scale]
        reference = min(others, key=reference_rank, default=None)
        if reference is None or reference_rank(reference) > reference_rank(self.record):
            return  # this engine is the reference, or the reference has not run yet
        problems = differences(reference, self.run_dir, self.record, self.run_dir)
        self.record.agreement = [{"engine": reference.engine, "agree": not problems, "problems": problems}]
        if problems:
            reason = f"output differs from the {reference.engine} engine's: " + "; ".join(problems)
            self._close("mismatch", reason)
            raise OutputMismatch(f"{self.workload.name} at {self.scale} on {self.engine.name}: {reason}")

    def run_once(self) -> float:
        try:
            if self.settings.smoke and self.record.instrumented_s is None:
                elapsed = self._instrumented_run()  # a smoke run's one timed run is its instrumented one
            else:
                elapsed = self._force()
        except Exception as err:
            self._close("failed", f"{type(err).__name__}: {first_line(err)}")
            raise
        self.samples.append(elapsed)
        return elapsed

    def finish(self) -> results.Record:
        """Record the samples taken since the last call (asv calls teardown between its samples too)."""
        if self.record.status in ("running", "ok"):
            self.record.samples_s += self.samples
            self.samples = []
            self.record.executors = self.session.executors()  # where it ran, lost ones included
            self._save("ok")
        return self.record

    def _close(self, status: str, reason: str) -> None:
        self.record.reason = redact_text(reason)  # an error may quote the configuration
        self._save(status)

    def _save(self, status: str) -> None:
        self.record.status = status
        if status != "running":
            self.record.finished = records.now()
        self.record.save(self.run_dir)


def new_record(engine: Engine, workload, scale: str, settings: RunSettings) -> results.Record:
    """A benchmark's record before it runs: what it is, how it is priced and judged."""
    suite = engine.suite_conf
    return results.Record(
        engine=engine.name, workload=workload.name, scale=scale, role=engine.role, backend=engine.backend,
        family=workload.family, variant=engine.variant, started=records.now(), tolerance=workload.tolerance,
        price=results.Price(**cost.pricing(suite, engine.role)), host_profile=settings.host,
        thresholds=cost.Thresholds.from_conf(suite), sql_conf=dict(workload.sql_conf),
        figures={"timed": workload.timed} if workload.timed else {})


def record_skipped(run_dir: Path, engine: Engine, settings: RunSettings, reason: str) -> int:
    """An engine that cannot run here, recorded as skipped for every benchmark of the run without starting a
    benchmark process for any of them (bench leaves it out of asv's parameters); returns how many."""
    count = 0
    for name in workloads.selected(settings.workloads):
        workload = workloads.get(name)
        for scale in scales(settings):
            if workload.runs_at(scale):
                record = new_record(engine, workload, scale, settings)
                record.status, record.reason, record.finished = "skipped", redact_text(reason), records.now()
                record.save(run_dir)
                count += 1
    return count


_prepared: dict[tuple, Trial] = {}


def prepared(run_dir, engine: str, workload: str, scale: str, settings: RunSettings, variant: str = "") -> Trial:
    """This process's trial for the benchmark, started once: asv_runner calls setup() again before every
    sample (timeit's setup), and the session, inputs and warm-up must not be redone each time."""
    key = (str(run_dir), engine, workload, scale, variant)
    if key not in _prepared:
        _prepared[key] = Trial(run_dir, engine, workload, scale, settings, variant)
    return _prepared[key]


def measured(run_dir, engine: str, workload: str, scale: str, settings: RunSettings, variant: str = "") -> results.Record:
    """The record with its instrumented run's metrics: read when this run already has them (the timing
    benchmark ran first), else made by preparing the trial here. Never a third run of the workload."""
    path = results.record_path(run_dir, engine, workload, scale, variant)
    raw = records.read_json(path)
    record = results.Record.from_json(raw, path.name) if raw else None
    if record and record.status in ("skipped", "undefined"):
        raise EngineUnavailable(record.reason or record.status)
    if record and (record.instrumented_s is not None or record.status in ("failed", "mismatch")):
        return record
    return prepared(run_dir, engine, workload, scale, settings, variant).record


def fixed_cost(settings: RunSettings, engine: str, workload: str, scale: str) -> float:
    """Seconds from a benchmark process's start (a fork, as asv's forkserver starts them) to ready for its
    first timed run: session and inputs, the warm-up and every other once-per-benchmark step excluded."""
    read, write = os.pipe()
    began = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # the child: what a benchmark process does before its warm-up
        os.close(read)
        status = 0
        try:
            w, e = workloads.get(workload), Engine.of(engine, settings)
            session_ = e.backend_module.open(e, e.backend_module.preflight(e), settings, services.addresses().get(engine))
            session_.prepare(w, session_.inputs(w, table_paths(w, scale, settings)))
            os.write(write, b"ready")
        except BaseException as err:  # report, never return into the parent's code from the child
            os.write(write, f"error {type(err).__name__}: {first_line(err)}".encode())
            status = 1
        finally:
            sys.stdout.flush()
            os._exit(status)
    os.close(write)
    answer = os.read(read, 4096).decode()
    elapsed = time.perf_counter() - began
    os.close(read)
    os.waitpid(pid, 0)
    if answer != "ready":
        raise HarnessError(f"the fixed-cost probe's process failed: {answer}")
    return elapsed
