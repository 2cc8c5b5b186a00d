"""The typed result model: records and runs, read once and read the same everywhere.

A trial writes one ``Record`` per engine x workload x scale (x variant) into its run directory; ``load``
reads a run directory into a ``Run``: its ``run.json``, every record (each checked against the schema), the
plugin's predicted plan coverage (``coverage.json``) and QualX's predictions (``qualification.json``). A
record's own figures (median, rows per second, cost per million rows, fallback share, GPU activity) are
properties here, computed in one place; everything across records (cases, agreement, speedups, verdicts,
summaries) is ``analysis``'s.

A record whose schema is newer than this code's, or that misses a field or has one of the wrong type, is
listed as unreadable with the reason; it never stops the others from being read.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from . import cost, records
from .fingerprint import Tolerance

SCHEMA = 2
RUN_SCHEMA = 2
STATUSES = ("running", "ok", "skipped", "failed", "mismatch", "undefined", "interrupted")
FINISHED = ("ok", "skipped", "failed", "mismatch", "undefined")  # what a benchmark ends as; the rest did not end
NOT_RUN = ("skipped", "undefined")  # ended without running: the engine cannot run here, or has no form of the workload
ROLES = ("cpu", "cpu-native", "gpu")
CPU_ROLES = ("cpu", "cpu-native")
COVERAGE_FILE = "coverage.json"
COMPARISON_FILE = "comparison.json"
QUALIFICATION_FILE = "qualification.json"
NOT_RECORDS = (records.RUN_FILE, COVERAGE_FILE, COMPARISON_FILE, QUALIFICATION_FILE)


class RecordError(ValueError):
    """A record that cannot be read; the message says why, in one line."""


# ---------------------------------------------------------------------------------------------- records


@dataclass
class Price:
    """What one engine's runs are priced as: its role's instance, times the host profile's nodes."""

    instance: str | None = None
    usd_per_hour: float | None = None
    nodes: int = 1
    date: str | None = None
    source: str | None = None
    missing: str | None = None  # why there is no price, when there is none

    @property
    def cluster_usd_per_hour(self) -> float | None:
        return None if self.usd_per_hour is None else self.nodes * self.usd_per_hour


@dataclass
class Record:
    """One benchmark: an engine running one workload at one scale, as its trial wrote it."""

    engine: str
    workload: str
    scale: str
    status: str = "running"
    role: str = "cpu"
    backend: str = "spark"
    family: str | None = None
    variant: str = ""
    reason: str | None = None
    started: str | None = None
    finished: str | None = None
    rows: int | None = None  # input rows (the workload's tables)
    samples_s: list[float] = field(default_factory=list)
    session_start_s: list[float] = field(default_factory=list)  # process start to a ready session, per process
    warmup_s: list[float] = field(default_factory=list)
    instrumented_s: float | None = None
    fingerprint_s: float | None = None  # the output check (fingerprint and kept rows), outside the timed region
    output_rows: int | None = None
    fingerprint: dict | None = None
    tolerance: Tolerance = field(default_factory=Tolerance)
    rows_file: str | None = None  # the sorted output, relative to the run directory, when small enough
    agreement: list[dict] = field(default_factory=list)  # what the trial found comparing with other engines
    price: Price = field(default_factory=Price)
    host_profile: str | None = None
    thresholds: cost.Thresholds = field(default_factory=cost.Thresholds)
    config: dict = field(default_factory=dict)  # redacted merged configuration, each value with its source
    sql_conf: dict = field(default_factory=dict)
    session: dict = field(default_factory=dict)  # how the session ran: connect, classic or remote, and where
    gpu_metrics: dict = field(default_factory=dict)
    spark_metrics: dict = field(default_factory=dict)
    plan: dict = field(default_factory=dict)  # operators that ran accelerated and those that did not
    figures: dict = field(default_factory=dict)  # workload-specific figures (bytes written, shard balance, ...)
    executors: list[dict] = field(default_factory=list)
    name: str = ""  # the record's file name in its run directory (not stored in it)

    # -- figures every reader uses, computed here once

    @property
    def ok(self) -> bool:
        return self.status == "ok" and bool(self.samples_s)

    @property
    def median_s(self) -> float | None:
        return statistics.median(self.samples_s) if self.samples_s else None

    @property
    def min_s(self) -> float | None:
        return min(self.samples_s, default=None)

    @property
    def max_s(self) -> float | None:
        return max(self.samples_s, default=None)

    @property
    def rows_per_s(self) -> float | None:
        return self.rows / self.median_s if self.rows and self.median_s else None

    @property
    def cost_per_mrows_usd(self) -> float | None:
        return cost.per_million_rows(self.price.nodes, self.price.usd_per_hour, self.median_s, self.rows)

    @property
    def fallback_fraction(self) -> float | None:
        """The share of the operators that ran which the accelerator did not run; None without a plan."""
        accelerated, other = self.plan.get("accelerated") or [], self.plan.get("other") or []
        total = len(accelerated) + len(other)
        return len(other) / total if total and self.plan.get("source") == "executed plan" else None

    @property
    def gpu_busy_pct(self) -> tuple[float | None, str]:
        """How busy the GPU was: SM activity where NVML's GPM gave it (Hopper and newer), else kernel-busy time."""
        if not self.gpu_metrics.get("available"):
            return None, "not measured"
        sm = self.gpu_metrics.get("sm_active_mean_pct")
        if sm is not None:
            return sm, "SM activity (NVML GPM)"
        return self.gpu_metrics.get("util_mean_pct"), "kernel-busy time (NVML utilization)"

    @property
    def label(self) -> str:
        return self.engine + (f" [{self.variant}]" if self.variant else "")

    # -- on disk

    def to_json(self) -> dict:
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "name"}
        data["tolerance"] = self.tolerance.to_json()
        data["price"] = asdict(self.price)
        data["thresholds"] = asdict(self.thresholds)
        return {"schema": SCHEMA, **data}

    def save(self, run_dir: Path) -> Path:
        path = record_path(run_dir, self.engine, self.workload, self.scale, self.variant)
        records.write_json(path, self.to_json())
        self.name = path.name
        return path

    @classmethod
    def from_json(cls, data, name: str = "") -> "Record":
        if not isinstance(data, dict):
            raise RecordError("not a JSON object")
        schema = data.get("schema")
        if schema == 1:
            data = _from_schema_1(data)
        elif schema != SCHEMA:
            newer = isinstance(schema, int) and schema > SCHEMA
            raise RecordError(f"schema {schema!r}: " + (f"written by a newer prepbench (this one reads schema {SCHEMA}); "
                                                         "upgrade to read it" if newer else f"not a record of schema {SCHEMA}"))
        values = {}
        for f in fields(cls):
            if f.name == "name" or f.name not in data:
                continue
            values[f.name] = _checked(f.name, data[f.name])
        for required in ("engine", "workload", "scale"):
            if required not in values:
                raise RecordError(f"field '{required}' is missing")
        if values.get("status", "running") not in STATUSES:
            raise RecordError(f"status {values['status']!r} is not one of {', '.join(STATUSES)}")
        if values.get("role", "cpu") not in ROLES:
            raise RecordError(f"role {values['role']!r} is not one of {', '.join(ROLES)}")
        return cls(**values, name=name)


_KINDS = {  # field -> (python types, description) for what a reader relies on
    "engine": ((str,), "text"), "workload": ((str,), "text"), "scale": ((str,), "text"), "status": ((str,), "text"),
    "role": ((str,), "text"), "backend": ((str,), "text"), "family": ((str, type(None)), "text"),
    "variant": ((str,), "text"), "reason": ((str, type(None)), "text"), "started": ((str, type(None)), "text"),
    "finished": ((str, type(None)), "text"), "rows": ((int, type(None)), "a whole number"),
    "samples_s": ((list,), "a list of numbers"), "session_start_s": ((list,), "a list of numbers"),
    "warmup_s": ((list,), "a list of numbers"), "instrumented_s": ((int, float, type(None)), "a number"),
    "fingerprint_s": ((int, float, type(None)), "a number"),
    "output_rows": ((int, type(None)), "a whole number"), "fingerprint": ((dict, type(None)), "an object"),
    "tolerance": ((dict,), "an object"), "rows_file": ((str, type(None)), "text"), "agreement": ((list,), "a list"),
    "price": ((dict,), "an object"), "host_profile": ((str, type(None)), "text"), "thresholds": ((dict,), "an object"),
    "config": ((dict,), "an object"), "sql_conf": ((dict,), "an object"), "session": ((dict,), "an object"),
    "gpu_metrics": ((dict,), "an object"), "spark_metrics": ((dict,), "an object"), "plan": ((dict,), "an object"),
    "figures": ((dict,), "an object"), "executors": ((list,), "a list"),
}


def _checked(name: str, value):
    types, description = _KINDS[name]
    if isinstance(value, bool) and bool not in types or not isinstance(value, types):
        raise RecordError(f"field '{name}' must be {description}, not {type(value).__name__} {_short(value)}")
    if name.endswith("_s") and isinstance(value, list):
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value):
            raise RecordError(f"field '{name}' must hold only finite numbers")
    try:
        if name == "tolerance":
            return Tolerance.from_json(value)
        if name == "price":
            return Price(**{k: v for k, v in value.items() if k in {f.name for f in fields(Price)}})
        if name == "thresholds":
            return cost.Thresholds(**{k: float(v) for k, v in value.items() if k in cost.Thresholds.__dataclass_fields__})
    except (TypeError, ValueError) as err:
        raise RecordError(f"field '{name}' is malformed: {err}") from None
    return value


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _from_schema_1(data: dict) -> dict:
    """A record written before schema 2: its checksum cannot be compared with today's fingerprint."""
    role = data.get("role") or ("cpu" if data.get("engine") == "cpu" else "gpu")
    pricing = data.get("pricing") if isinstance(data.get("pricing"), dict) else {}
    side = pricing.get("cpu" if role == "cpu" else "gpu") or {}
    planned = data.get("planned_operators") if isinstance(data.get("planned_operators"), dict) else None
    upgraded = {k: v for k, v in data.items() if k in _KINDS and k not in ("role", "price", "plan")}
    upgraded.update(schema=SCHEMA, role=role, backend="spark", price={
        "instance": side.get("instance"), "usd_per_hour": side.get("usd_per_hour"), "nodes": pricing.get("nodes", 1),
        "date": side.get("date"), "source": side.get("source"),
        "missing": side.get("missing") or (None if side else "schema 1 record without prices")})
    if planned:
        upgraded["plan"] = {"source": "executed plan", "accelerator": "RAPIDS Accelerator",
                            "accelerated": planned.get("gpu") or [], "other": planned.get("cpu") or []}
    upgraded["agreement"] = [{"note": "schema 1 record: its checksum is not comparable with today's fingerprint"}]
    return upgraded


def record_path(run_dir: Path, engine: str, workload: str, scale: str, variant: str = "") -> Path:
    return Path(run_dir) / f"{workload}.{engine}.{scale}{'@' + variant if variant else ''}.json"


# ---------------------------------------------------------------------------------------------- runs


@dataclass
class RunInfo:
    """What a run directory says about itself (run.json), with what is unknown left as None."""

    name: str
    path: str
    hostname: str | None = None
    profile: str | None = None
    started: str | None = None
    ended: str | None = None
    state: str = "unknown"  # running (or killed), complete, interrupted; unknown without run.json
    commit: str | None = None
    dirty: bool = False
    cpu: str | None = None
    cores: int | None = None
    gpus: list[dict] = field(default_factory=list)
    versions: dict = field(default_factory=dict)
    overrides: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # set-up failures and what the run could not do
    timings: dict = field(default_factory=dict)  # where the run's wall time went (bench writes it at the end)
    smoke: bool = False  # one timed run per benchmark, which was also its instrumented run

    @classmethod
    def read(cls, run_dir: Path) -> tuple["RunInfo", str | None]:
        """The run's description, and what is wrong with its run.json (None when it is fine)."""
        run_dir = Path(run_dir)
        info = cls(run_dir.name, str(run_dir))
        path = run_dir / records.RUN_FILE
        data = records.read_json(path)
        if not isinstance(data, dict):
            return info, f"{records.RUN_FILE} is {'unreadable' if path.exists() else 'missing'}: host, date and commit are unknown"
        env = data.get("environment") if isinstance(data.get("environment"), dict) else {}
        settings = data.get("settings") if isinstance(data.get("settings"), dict) else {}
        text = lambda v: v if isinstance(v, str) and v else None
        info.hostname, info.profile = text(env.get("hostname")), text(settings.get("host"))
        info.started, info.ended = text(data.get("started")), text(data.get("ended"))
        info.state = data.get("state") if data.get("state") in ("running", "complete", "interrupted") else "complete"
        info.commit, info.dirty = text(env.get("commit")), env.get("worktree_dirty") is True
        info.cpu = text(env.get("cpu"))
        info.cores = env.get("cores") if isinstance(env.get("cores"), int) else None
        info.gpus = [g for g in env.get("gpus") or [] if isinstance(g, dict)]
        info.versions = {k: env[k] for k in ("python", "java", "spark", "rapids_plugin", "comet", "scala")
                         if isinstance(env.get(k), str)}
        info.overrides = [o for o in settings.get("overrides") or [] if isinstance(o, str)]
        info.warnings = [w for w in data.get("warnings") or [] if isinstance(w, str)]
        info.problems = [p for p in data.get("problems") or [] if isinstance(p, str)]
        info.timings = data.get("timings") if isinstance(data.get("timings"), dict) else {}
        info.smoke = settings.get("smoke") is True
        return info, None


@dataclass
class Run:
    info: RunInfo
    records: list[Record]
    unreadable: list[tuple[str, str]]  # (file name, why)
    coverage: dict  # coverage.json: predicted plan coverage per workload, if measured
    missing: list[str]  # what could not be read, in words
    qualification: dict = field(default_factory=dict)  # qualification.json: QualX's predictions, if qualified

    @property
    def unfinished(self) -> list[Record]:
        return [r for r in self.records if r.status not in FINISHED]

    @property
    def interrupted(self) -> bool:
        return self.info.state != "complete" or bool(self.unfinished)


def load(run_dir: Path) -> Run:
    """A run directory read into the model; what cannot be read is listed, never raised."""
    run_dir = Path(run_dir)
    info, problem = RunInfo.read(run_dir)
    missing = [problem] if problem else []
    found, unreadable = [], []
    for path in sorted(run_dir.glob("*.json")):
        if path.name in NOT_RECORDS or path.name.startswith("."):
            continue
        try:
            data = records.read_json(path)
            if data is None:
                raise RecordError("not valid JSON")
            found.append(Record.from_json(data, path.name))
        except RecordError as err:
            unreadable.append((path.name, str(err)))
    coverage = records.read_json(run_dir / COVERAGE_FILE)
    qualification = records.read_json(run_dir / QUALIFICATION_FILE)
    missing += [f"record {name} is unreadable: {why}" for name, why in unreadable]
    if info.state == "running":
        missing.append("the run never recorded its end: it was killed, or it is still running")
    elif info.state == "interrupted":
        missing.append("the run was interrupted")
    missing += [f"{r.workload} under {r.engine} at {r.scale} never finished (its record says {r.status})"
                for r in found if r.status not in FINISHED]
    if not found:
        missing.append("no benchmark records in this run")
    return Run(info, found, unreadable, coverage if isinstance(coverage, dict) else {}, missing,
               qualification if isinstance(qualification, dict) else {})


def latest_run(results_dir: Path) -> Path:
    """The newest run directory that holds benchmark records (a coverage-only directory is not a run)."""
    from . import HarnessError

    runs = sorted(p for p in Path(results_dir).glob("*/") if (p / records.RUN_FILE).is_file()
                  and any(q.name not in NOT_RECORDS for q in p.glob("*.json")))
    if not runs:
        raise HarnessError(f"no runs with benchmark records under {results_dir}: run `python -m harness bench --smoke` first")
    return runs[-1]


def scale_sort(scale: str) -> float:
    try:
        return float(scale)
    except ValueError:
        return math.inf  # "as-is" and other labels after the generated scales
