"""The one analysis pass: runs read once in, every derived figure out.

``analyze`` turns loaded runs (``results.Run``) into an ``Analysis``, and nothing else in the suite derives a
figure: the text summary (``report``), ``comparison.json`` and its CSV (``export``, one schema versioned on its
own), the site (``dashboard``) and ``bench``'s exit status only render or read what is computed here, once:

* **cases**: the engines that ran one workload at one scale (and variant), from one run or from runs of
  several hosts paired by ``compare``; where one host ran a case twice, the newer finished case is kept;
* **agreement** of every output with the case's reference engine (CPU Spark wherever it produced an output;
  the reference is never itself flagged), by fingerprint and, for small outputs, row by row;
* **speedups** of every engine over every CPU engine, each with whether it is noise (``verdict.Speedup``);
* **verdicts**, measured or predicted (``verdict.decide``), and what QualX's prediction would have said
  where a measurement decided, with the prediction's error (``accuracy``);
* the **per-engine summary**: each CPU engine's geometric-mean time ratio to CPU Spark, the cases it is the
  cheapest in, the GPU side, and the engines that could not run here, once each;
* the **scaling view**: per workload, each engine's cost per million rows across scales, the scales where
  the cheapest agreeing engine changes (a change inside the spread of repeats is said to be noise) and the
  fitted growth of each engine's time with rows (the exponent of a power law).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import fingerprint, records, results
from .fingerprint import Tolerance
from .results import ROLES, Record, Run, RunInfo
from .verdict import CPU_ROLES, MEASURED, Prediction, Speedup, Verdict, cheapest_cpu, decide, usable

ANALYSIS_SCHEMA = 1  # comparison.json and comparison.csv; independent of the record schema
COMPARISONS = "comparisons"  # where `compare` saves runs paired across hosts, under results/
PAIRING_FILE = "runs.json"


# ---------------------------------------------------------------------------------------------- the model


@dataclass
class EngineResult:
    """One engine's record within a case, with where it ran and how it compares."""

    label: str  # the engine's name, with its host where a case holds two runs of the same engine
    record: Record
    run: RunInfo
    agrees: bool | None = None  # with the case's reference engine; None when not compared
    problems: list[str] = field(default_factory=list)
    speedups: dict[str, Speedup] = field(default_factory=dict)  # CPU engine label -> this engine's speedup over it

    @property
    def role(self) -> str:
        return self.record.role


@dataclass
class Case:
    """The engines that ran one workload at one scale (and variant), compared once."""

    workload: str
    family: str | None
    scale: str
    variant: str
    engines: list[EngineResult]
    reference: str | None  # the engine every other output is compared with
    outputs_agree: bool | None
    verdict: Verdict
    coverage: dict | None = None  # the plugin's predicted plan coverage (coverage.json), if measured
    prediction: Prediction | None = None  # QualX's, for the reference engine's queries
    shadow: Verdict | None = None  # the verdict the prediction alone gives, where a measurement decided

    @property
    def key(self) -> tuple:
        return self.workload, self.scale, self.variant

    @property
    def label(self) -> str:
        return self.workload + (f" [{self.variant}]" if self.variant else "")

    @property
    def finished(self) -> bool:
        return all(e.record.status in results.FINISHED for e in self.engines)

    @property
    def hosts(self) -> list[str]:
        return list(dict.fromkeys(e.run.hostname or "unknown host" for e in self.engines))

    @property
    def newest(self) -> RunInfo:
        return max((e.run for e in self.engines), key=lambda run: run.started or "")

    def engine(self, label: str) -> EngineResult | None:
        return next((e for e in self.engines if e.label == label), None)

    @property
    def reference_result(self) -> EngineResult | None:
        return self.engine(self.reference) if self.reference else None

    @property
    def gpu(self) -> EngineResult | None:
        """The GPU engine the verdict weighed (or the first that ran), for its activity and plan."""
        chosen = self.engine(self.verdict.engine) if self.verdict.engine else None
        if chosen is not None and chosen.role == "gpu":
            return chosen
        return next((e for e in self.engines if e.role == "gpu" and e.record.ok), None)

    @property
    def measured_speedup(self) -> float | None:
        """The best agreeing GPU run's speedup over the reference engine: what QualX predicts, measured."""
        reference = self.reference_result
        gpus = [e for e in self.engines if e.role == "gpu" and usable(e)]
        if reference is None or not reference.record.ok or not gpus:
            return None
        return max(reference.record.median_s / e.record.median_s for e in gpus)

    @property
    def prediction_error(self) -> float | None:
        """QualX's predicted speedup over the measured one, less one (0.25: predicted 25% too fast)."""
        measured = self.measured_speedup
        if measured is None or self.prediction is None or not self.prediction.speedup:
            return None
        return self.prediction.speedup / measured - 1


@dataclass
class EngineSummary:
    """One engine over every case of the analysis: the answer at a glance."""

    label: str
    role: str
    backend: str
    ran: int  # cases it finished
    time_ratio: float | None = None  # geometric mean of its median / the reference's, over cases both ran
    ratio_cases: int = 0
    cheapest_in: int = 0  # cases where it is the cheapest CPU engine that agreed
    reference_in: int = 0  # cases where it is the reference the others are compared with
    failed: int = 0
    unavailable: str | None = None  # why it could not run here (every record skipped)
    undefined: int = 0  # workloads it has no form of
    verdicts: dict[str, int] = field(default_factory=dict)  # GPU engines: verdict label -> cases


@dataclass
class ScalePoint:
    scale: str
    rows: int | None
    median_s: float
    min_s: float
    max_s: float
    cost_per_mrows_usd: float | None
    rows_per_s: float | None


@dataclass
class EngineScaling:
    label: str
    role: str
    points: list[ScalePoint]
    exponent: float | None  # time ~ rows ** exponent, fitted over the scales it ran (None: fewer than two)


@dataclass
class Crossover:
    """Between two scales run, the cheapest agreeing engine changed from one engine to another."""

    below: str  # the scale where `before` was cheapest
    at: str  # the next scale, where `after` is
    before: str
    after: str
    within_noise: bool | None  # the two engines' cost ranges overlap at both scales (None: fewer than 2 repeats)
    tied_at: list[str] = field(default_factory=list)  # the scales where their cost ranges overlap

    @property
    def text(self) -> str:
        note = {True: " (within the spread of repeats: noise, not a crossover)", None: " (noise unknown)", False: ""}
        if self.within_noise is False and self.tied_at:
            note[False] = f" (at {self.tied_at[0]} the two are within the spread of repeats)"
        return f"{self.before} is cheapest up to {self.below}, {self.after} from {self.at}{note[self.within_noise]}"


@dataclass
class Scaling:
    """One workload (and variant) on one host or pairing, across the scales it ran."""

    workload: str
    variant: str
    hosts: list[str]
    scales: list[str]
    engines: list[EngineScaling]
    cheapest: dict[str, str]  # scale -> the cheapest agreeing engine there
    crossovers: list[Crossover]

    @property
    def label(self) -> str:
        return self.workload + (f" [{self.variant}]" if self.variant else "")

    @property
    def sentence(self) -> str:
        if not self.cheapest:
            return "no engine finished with an agreeing output"
        if not self.crossovers:
            engine = next(iter(self.cheapest.values()))
            return f"{engine} is cheapest at every scale run ({', '.join(self.scales)})"
        return "; ".join(c.text for c in self.crossovers)


@dataclass
class Accuracy:
    """QualX's predictions against measured GPU runs of the same cases."""

    cases: list[Case]  # with both a prediction and a measured GPU speedup over the reference

    @property
    def median_abs_error(self) -> float | None:
        errors = [abs(c.prediction_error) for c in self.cases]
        return statistics.median(errors) if errors else None

    @property
    def wrong_verdicts(self) -> list[Case]:
        """Cases where the prediction alone would have given another verdict than the measurement."""
        return [c for c in self.cases if c.shadow is not None and c.shadow.verdict != c.verdict.verdict]


@dataclass
class Analysis:
    runs: list[Run]
    cases: list[Case]  # shown: the newest finished per host (or pairing) and workload x scale x variant
    missing: list[str]
    engines: list[EngineSummary]
    scaling: list[Scaling]
    accuracy: Accuracy
    shown_per_run: dict[str, int]

    @property
    def gpu_measured(self) -> bool:
        """Whether any GPU engine finished a benchmark in these runs."""
        return any(e.role == "gpu" and e.record.ok for c in self.cases for e in c.engines)

    @property
    def qualification(self) -> list[dict]:
        """Each run's qualification.json (QualX's run), for the tools, the model and the AutoTuner's settings."""
        return [run.qualification for run in self.runs if run.qualification]


# ---------------------------------------------------------------------------------------------- the pass


def load(run_dirs, comparisons=()) -> tuple[list[Run], list[list[Run]], list[str]]:
    """Every run directory read once (a run paired by `compare` is the same object as the run itself), the
    pairings, and what could not be read."""
    loaded: dict[Path, Run] = {}

    def run(path) -> Run:
        key = Path(path).resolve()
        if key not in loaded:
            loaded[key] = results.load(key if Path(path).is_absolute() else Path(path))
        return loaded[key]

    runs = [run(d) for d in run_dirs]
    pairings, missing = [], []
    for pairing in comparisons:
        paths, problem = _paired_paths(Path(pairing))
        if problem:
            missing.append(f"{Path(pairing).parent}: {problem}")
        else:
            pairings.append([run(p) for p in paths])
    return runs, pairings, missing


def analyze_dirs(run_dirs, comparisons=()) -> Analysis:
    runs, pairings, missing = load(run_dirs, comparisons)
    return analyze(runs, pairings, missing)


def analyze(runs: list[Run], pairings: list[list[Run]] = (), missing: list[str] = ()) -> Analysis:
    """Everything derived from the runs: each run's own cases and the cases of each pairing (only those that
    really span its runs), the newest finished one shown per host and key, then the summaries of those."""
    missing = [*missing, *(f"{run.info.path}: {m}" for run in runs for m in run.missing)]
    candidates = [(case, [run]) for run in runs for case in cases([run])]
    for paired in pairings:
        candidates += [(case, paired) for case in cases(paired) if len({e.run.name for e in case.engines}) > 1]
    newest: dict[tuple, Case] = {}
    for case, source in sorted(candidates, key=lambda c: max(r.info.started or "" for r in c[1])):
        key = (tuple(sorted(f"{r.info.hostname}/{r.info.profile}" for r in source)), case.key)
        kept = newest.get(key)
        if kept is None or case.finished or not kept.finished:  # an unfinished case never hides a finished one
            newest[key] = case
    shown = sorted(newest.values(), key=lambda c: (c.workload, scale_sort(c.scale), c.variant, c.hosts))
    runs = [*runs, *(r for paired in pairings for r in paired if all(r is not known for known in runs))]
    per_run = {run.info.name: sum(1 for c in shown if any(e.run.name == run.info.name for e in c.engines)) for run in runs}
    accuracy = Accuracy([c for c in shown if c.prediction_error is not None])
    return Analysis(runs, shown, missing, engine_summaries(shown), scaling(shown), accuracy, per_run)


def cases(runs: list[Run]) -> list[Case]:
    """Every workload x scale x variant of the runs, with all the engines that ran it. Given several runs
    (say a CPU cluster's and a GPU cluster's), a case pairs their engines; each keeps its own price."""
    grouped: dict[tuple, list[tuple[Record, Run]]] = {}
    for run in runs:
        for record in run.records:
            grouped.setdefault((record.workload, record.scale, record.variant), []).append((record, run))
    coverage = {name: c for run in runs for name, c in (run.coverage.get("workloads") or {}).items()
                if isinstance(c, dict) and "fraction" in c}
    found = []
    for (workload, scale, variant), members in sorted(grouped.items(), key=lambda kv: (kv[0][0], scale_sort(kv[0][1]), kv[0][2])):
        ran = {r.engine for r, _ in members if r.status not in results.NOT_RUN}
        members = [(r, run) for r, run in members if r.status not in results.NOT_RUN or r.engine not in ran]
        named = [r.engine for r, _ in members]  # skipped on one host, run on another: the run stands
        engines = [EngineResult(f"{r.engine} ({run.info.hostname or run.info.name})" if named.count(r.engine) > 1
                                else r.engine, r, run.info) for r, run in members]
        engines.sort(key=role_order)
        predictions = {id(r): prediction(run, r) for r, run in members}
        found.append(_case(workload, scale, variant, engines, coverage.get(workload), predictions))
    return found


def _case(workload: str, scale: str, variant: str, engines: list[EngineResult], coverage: dict | None,
          predictions: dict) -> Case:
    reference = reference_of(engines)
    for e in engines:
        if e is reference:
            e.agrees = True  # the reference defines the right output; it is never itself flagged
        elif e.record.status == "mismatch":
            e.agrees, e.problems = False, [e.record.reason or "its output differs from the reference's"]
        elif reference is not None and e.record.status == "ok" and e.record.fingerprint:
            e.problems = differences(reference.record, Path(reference.run.path), e.record, Path(e.run.path))
            e.agrees = not e.problems
    cpus = [e for e in engines if e.role in CPU_ROLES and e.record.ok]
    for e in engines:
        for cpu in cpus:
            if e.record.ok and e is not cpu:
                e.speedups[cpu.label] = speedup(cpu.record, e.record)
    compared = [e.agrees for e in engines if e.agrees is not None]
    agree = None if len(compared) < 2 and False not in compared else all(compared)
    thresholds = (reference or engines[0]).record.thresholds
    predicted = predictions.get(id(reference.record)) if reference is not None else None
    verdict = decide(engines, thresholds, reference, coverage, predicted)
    shadow = decide(engines, thresholds, reference, coverage, predicted, use_measured=False) \
        if verdict.basis == MEASURED and predicted is not None and predicted.speedup else None
    family = next((e.record.family for e in engines if e.record.family), None)
    return Case(workload, family, scale, variant, engines, reference.label if reference else None, agree, verdict,
                coverage, predicted, shadow)


def reference_of(engines: list[EngineResult]) -> EngineResult | None:
    """The engine every output is compared with: CPU Spark wherever it produced an output, else the first CPU
    engine (in role order) that did. A reference marked `mismatch` by an older trial is still the reference."""
    produced = [e for e in engines if e.record.fingerprint and e.record.status in ("ok", "mismatch")]
    return min(produced, key=lambda e: reference_rank(e.record), default=None)


def reference_rank(record: Record) -> tuple:
    """Lower is preferred as the reference: CPU Spark, then other CPU engines, CPU-native ones, GPU ones."""
    return ROLES.index(record.role), record.backend != "spark", record.engine


def role_order(e: EngineResult) -> tuple:
    return ROLES.index(e.role), e.record.backend != "spark", e.label


def differences(reference: Record, reference_dir: Path, other: Record, other_dir: Path) -> list[str]:
    """What differs between an output and the reference's: the fingerprints within the looser tolerance, then,
    if they differ and both kept their rows, the first rows that differ."""
    tolerance = other.tolerance.looser(reference.tolerance)
    problems = fingerprint.compare(reference.fingerprint, other.fingerprint, tolerance)
    if problems and reference.rows_file and other.rows_file:
        problems += _row_problems(reference_dir / reference.rows_file, other_dir / other.rows_file, tolerance)
    return problems


def _row_problems(expected: Path, actual: Path, tolerance: Tolerance) -> list[str]:
    import pyarrow.parquet as pq

    if not (expected.is_file() and actual.is_file()):
        return []
    try:
        return fingerprint.compare_rows(pq.read_table(expected), pq.read_table(actual), tolerance)
    except (OSError, ValueError) as err:
        return [f"the saved rows could not be compared: {err}"]


def noise(a: Record, b: Record) -> bool | None:
    """Whether two engines' [min, max] ranges of repeats overlap; unknown with fewer than two repeats each."""
    if len(a.samples_s) < 2 or len(b.samples_s) < 2:
        return None
    return a.min_s <= b.max_s and b.min_s <= a.max_s


def speedup(slow: Record, fast: Record) -> Speedup:
    return Speedup(slow.median_s / fast.median_s, noise(slow, fast))


def prediction(run: Run, record: Record) -> Prediction | None:
    """QualX's prediction for a record's queries, from its run's qualification.json; None if not qualified."""
    found = run.qualification.get("records", {}).get(record.name) if run.qualification else None
    if not isinstance(found, dict):
        return None
    tools = run.qualification.get("tools") or {}
    price = run.qualification.get("gpu_price")
    speedup_ = found.get("speedup")
    return Prediction(speedup_ if isinstance(speedup_, (int, float)) and speedup_ > 0 else None,
                      found.get("reason") or (None if speedup_ else "no prediction"), found.get("queries") or 0,
                      found.get("cpu_s"), found.get("gpu_s"), found.get("unsupported_pct"),
                      f"QualX ({tools.get('package', 'spark-rapids-user-tools')} {tools.get('version', '?')}, "
                      f"{tools.get('model', 'onprem')} model)",
                      results.Price(**price) if isinstance(price, dict) else None)


def scale_sort(scale: str) -> float:
    return results.scale_sort(scale)


# ---------------------------------------------------------------------------------------------- summaries


def engine_summaries(found: list[Case]) -> list[EngineSummary]:
    """Per engine: cases run, the geometric mean of its time ratio to the reference (CPU Spark), the cases it is
    the cheapest CPU engine in, and, for one that never ran, why (listed once, not per workload)."""
    by_label: dict[str, EngineSummary] = {}
    ratios: dict[str, list[float]] = {}
    skipped: dict[str, list[Record]] = {}
    for case in found:
        reference = case.reference_result
        cheapest = cheapest_cpu(case.engines)
        for e in case.engines:
            r = e.record
            summary = by_label.setdefault(e.label, EngineSummary(e.label, r.role, r.backend, 0))
            summary.ran += r.ok
            summary.failed += r.status in ("failed", "mismatch") or (r.ok and e.agrees is False)
            summary.undefined += r.status == "undefined"
            if r.status == "skipped":
                skipped.setdefault(e.label, []).append(r)
            summary.cheapest_in += cheapest is e
            summary.reference_in += reference is e and r.ok
            if reference is not None and e is not reference and usable(e) and reference.record.ok:
                ratios.setdefault(e.label, []).append(r.median_s / reference.record.median_s)
            if r.role == "gpu" and (r.ok or r.status == "skipped"):
                summary.verdicts[case.verdict.label] = summary.verdicts.get(case.verdict.label, 0) + 1
    for label, summary in by_label.items():
        if ratios.get(label):
            summary.time_ratio = math.exp(statistics.fmean(math.log(x) for x in ratios[label]))
            summary.ratio_cases = len(ratios[label])
        if summary.ran == 0 and summary.failed == 0 and skipped.get(label):
            summary.unavailable = skipped[label][0].reason or "skipped"
    return sorted(by_label.values(), key=lambda s: (ROLES.index(s.role), s.backend != "spark", s.label))


def scaling(found: list[Case]) -> list[Scaling]:
    """Per workload and host (or pairing), across its scales: each engine's points, the cheapest agreeing
    engine per scale, the crossovers and each engine's fitted growth exponent."""
    grouped: dict[tuple, list[Case]] = {}
    for case in found:
        if case.scale != "as-is":
            grouped.setdefault((case.workload, case.variant, tuple(case.hosts)), []).append(case)
    views = []
    for (workload, variant, hosts), chosen in sorted(grouped.items()):
        chosen.sort(key=lambda c: scale_sort(c.scale))
        if len(chosen) < 2:
            continue
        engines: dict[str, EngineScaling] = {}
        cheapest: dict[str, str] = {}
        best_result: dict[str, EngineResult] = {}
        for case in chosen:
            for e in case.engines:
                if usable(e):
                    r = e.record
                    engines.setdefault(e.label, EngineScaling(e.label, e.role, [], None)).points.append(
                        ScalePoint(case.scale, r.rows, r.median_s, r.min_s, r.max_s, r.cost_per_mrows_usd, r.rows_per_s))
            best = _cheapest(case.engines)
            if best is not None:
                cheapest[case.scale], best_result[case.scale] = best.label, best
        for engine in engines.values():
            engine.exponent = growth_exponent([(p.rows, p.median_s) for p in engine.points])
        crossovers = []
        scales = [c.scale for c in chosen if c.scale in cheapest]
        for below, at in zip(scales, scales[1:]):
            if cheapest[below] != cheapest[at]:
                before, after = cheapest[below], cheapest[at]
                crossovers.append(Crossover(below, at, before, after, *_crossover_noise(chosen, below, at, before, after)))
        views.append(Scaling(workload, variant, list(hosts), [c.scale for c in chosen],
                             sorted(engines.values(), key=lambda s: (ROLES.index(s.role), s.label)), cheapest, crossovers))
    return views


def _cheapest(engines: list[EngineResult]) -> EngineResult | None:
    """The cheapest engine of any role whose output agreed (by cost where all are priced, else by time)."""
    chosen = [e for e in engines if usable(e)]
    if not chosen:
        return None
    priced = all(e.record.cost_per_mrows_usd is not None for e in chosen)
    return min(chosen, key=lambda e: (e.record.cost_per_mrows_usd if priced else e.record.median_s, role_order(e)))


def _crossover_noise(chosen: list[Case], below: str, at: str, before: str, after: str) -> tuple[bool | None, list[str]]:
    """(within noise, the scales where the two engines' costs overlap): noise only where they overlap at both
    scales; overlapping at one, the change is real but where it falls between the two scales is less certain."""
    found = {}
    for case in chosen:
        if case.scale in (below, at):
            a, b = case.engine(before), case.engine(after)
            if a is not None and b is not None and usable(a) and usable(b):
                found[case.scale] = cost_noise(a.record, b.record)
    tied = [scale for scale in (below, at) if found.get(scale)]
    if len(found) < 2 or None in found.values():
        return None, tied
    return len(tied) == 2, tied


def cost_noise(a: Record, b: Record) -> bool | None:
    """Whether two records' cost ranges ([min, max] of repeats, each at its own price) overlap."""
    if len(a.samples_s) < 2 or len(b.samples_s) < 2:
        return None
    scale = lambda r: (r.price.cluster_usd_per_hour or 1.0) / (r.rows or 1)
    return a.min_s * scale(a) <= b.max_s * scale(b) and b.min_s * scale(b) <= a.max_s * scale(a)


def growth_exponent(points: list[tuple[int | None, float]]) -> float | None:
    """The least-squares slope of log(time) against log(rows): time grows as rows ** slope."""
    pairs = [(math.log(rows), math.log(t)) for rows, t in points if rows and t and t > 0]
    if len({x for x, _ in pairs}) < 2:
        return None
    mx, my = statistics.fmean(x for x, _ in pairs), statistics.fmean(y for _, y in pairs)
    return sum((x - mx) * (y - my) for x, y in pairs) / sum((x - mx) ** 2 for x, _ in pairs)


@dataclass
class RunTiming:
    """Where a run's wall time went: its phases as bench timed them, the benchmarks' own work (warm-up,
    instrumented and timed runs) and the rest of the benchmark processes' time."""

    wall_s: float
    parts: dict[str, float]
    work_s: float

    @property
    def overhead(self) -> float | None:
        """Wall time over the benchmarks' own work: 1.0 would be a run that did nothing else."""
        return self.wall_s / self.work_s if self.work_s > 0 else None


def run_timing(run: Run) -> RunTiming | None:
    timings = run.info.timings
    if not isinstance(timings.get("wall_s"), (int, float)):
        return None
    phases = {k: v for k, v in (timings.get("phases") or {}).items() if isinstance(v, (int, float))}
    instrumented = 0 if run.info.smoke else 1  # a smoke run's one timed run was its instrumented run
    work = sum(sum(r.warmup_s) + instrumented * (r.instrumented_s or 0) + sum(r.samples_s) for r in run.records)
    starts = sum(sum(r.session_start_s) for r in run.records)
    checks = sum(r.fingerprint_s or 0 for r in run.records)
    coverage = run.coverage.get("elapsed_s") if isinstance(run.coverage.get("elapsed_s"), (int, float)) else 0.0
    parts = dict(phases)
    if "benchmarks" in parts:  # split asv's time into what the benchmark processes did
        rest = parts.pop("benchmarks")
        parts.update({"plan coverage": coverage, "sessions and inputs": starts,
                      "output checks (fingerprints; with the run in Spark's one job)": checks, "warm-up, instrumented and timed runs": work})
        parts["asv and process starts"] = max(0.0, rest - coverage - starts - checks - work)
    return RunTiming(float(timings["wall_s"]), parts, work)


# ---------------------------------------------------------------------------------------------- export


CSV_FIELDS = (  # comparison.csv: one row per case and engine, the same figures as comparison.json's cases
    "workload", "family", "scale", "variant", "hosts", "verdict", "basis", "verdict_engine", "speedup",
    "within_noise", "break_even_speedup", "compared_with", "predicted_speedup", "measured_speedup",
    "prediction_error", "outputs_agree", "engine", "role", "backend", "run", "hostname", "host_profile", "started",
    "commit", "status", "reason", "samples", "median_s", "min_s", "max_s", "rows", "rows_per_s", "instance", "nodes",
    "usd_per_hour", "cost_per_mrows_usd", "agrees", "gpu_busy_pct", "gpu_busy_source", "gpu_memory_peak_bytes",
    "energy_per_mrows_j", "fallback_fraction", "not_accelerated",
)


def export(analysis: Analysis, generated: str | None = None) -> dict:
    """comparison.json: the analysis as one document for other tools (written, never read back to compute)."""
    return {
        "schema": ANALYSIS_SCHEMA,
        "generated": generated or records.now(),
        "runs": [asdict(run.info) for run in analysis.runs],
        "missing": analysis.missing,
        "engines": [asdict(s) for s in analysis.engines],
        "cases": [_case_json(c) for c in analysis.cases],
        "scaling": [{"workload": s.workload, "variant": s.variant, "hosts": s.hosts, "scales": s.scales,
                     "cheapest": s.cheapest, "summary": s.sentence, "crossovers": [asdict(c) for c in s.crossovers],
                     "engines": [asdict(e) for e in s.engines]} for s in analysis.scaling],
        "prediction_accuracy": {"cases": len(analysis.accuracy.cases),
                                "median_abs_error": analysis.accuracy.median_abs_error,
                                "wrong_verdicts": [c.label + " @" + c.scale for c in analysis.accuracy.wrong_verdicts]},
        "qualification": [{k: q.get(k) for k in ("tools", "state", "reason", "applications")}
                          for q in analysis.qualification],
    }


def _case_json(c: Case) -> dict:
    v = c.verdict
    return {
        "workload": c.workload, "family": c.family, "scale": c.scale, "variant": c.variant, "hosts": c.hosts,
        "reference": c.reference, "outputs_agree": c.outputs_agree, "verdict": v.verdict, "basis": v.basis,
        "verdict_label": v.label, "verdict_engine": v.engine, "speedup": v.speedup.value if v.speedup else None,
        "within_noise": v.speedup.noise if v.speedup else None, "break_even_speedup": v.break_even,
        "compared_with": v.compared_with, "reasons": v.reasons,
        "plan_coverage": c.coverage.get("fraction") if c.coverage else None,
        "prediction": asdict(c.prediction) if c.prediction else None,
        "measured_speedup": c.measured_speedup, "prediction_error": c.prediction_error,
        "shadow_verdict": c.shadow.label if c.shadow else None,
        "engines": [_engine_json(e) for e in c.engines],
    }


def _engine_json(e: EngineResult) -> dict:
    r = e.record
    busy, source = r.gpu_busy_pct
    return {
        "label": e.label, "engine": r.engine, "role": e.role, "backend": r.backend, "run": e.run.name,
        "hostname": e.run.hostname, "host_profile": r.host_profile, "started": e.run.started, "commit": e.run.commit,
        "status": r.status, "reason": r.reason, "samples": len(r.samples_s), "median_s": r.median_s, "min_s": r.min_s,
        "max_s": r.max_s, "rows": r.rows, "rows_per_s": r.rows_per_s, "instance": r.price.instance,
        "nodes": r.price.nodes, "usd_per_hour": r.price.usd_per_hour, "cost_per_mrows_usd": r.cost_per_mrows_usd,
        "agrees": e.agrees, "problems": e.problems,
        "speedups": {k: s.value for k, s in e.speedups.items()},
        "within_noise": {k: s.noise for k, s in e.speedups.items()},
        "gpu_busy_pct": busy, "gpu_busy_source": source if busy is not None else None,
        "gpu_memory_peak_bytes": r.gpu_metrics.get("memory_peak_bytes"),
        "energy_per_mrows_j": r.gpu_metrics.get("energy_per_mrows_j"),
        "fallback_fraction": r.fallback_fraction, "not_accelerated": list(dict.fromkeys(r.plan.get("other") or [])),
    }


def csv_rows(document: dict) -> list[dict]:
    """comparison.csv's rows, flattened from comparison.json's cases: one per case and engine."""
    rows = []
    for case in document["cases"]:
        for e in case["engines"]:
            row = {**{k: case.get(k) for k in CSV_FIELDS}, **{k: e.get(k) for k in CSV_FIELDS if k in e}}
            row.update(hosts=", ".join(case["hosts"]), verdict=case["verdict_label"], engine=e["label"],
                       predicted_speedup=(case["prediction"] or {}).get("speedup"),
                       not_accelerated=", ".join(e["not_accelerated"]))
            rows.append({k: row.get(k) for k in CSV_FIELDS})
    return rows


def write_comparison(analysis: Analysis, out: Path) -> Path:
    records.write_json(out, export(analysis))
    return out


def _paired_paths(pairing: Path) -> tuple[list[str], str | None]:
    data = records.read_json(pairing)
    paths = data.get("runs") if isinstance(data, dict) else None
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        return [], f"{PAIRING_FILE} does not list the run directories it pairs"
    gone = [p for p in paths if not Path(p).is_dir()]
    if gone:
        return [], f"the paired run directories {', '.join(gone)} are gone"
    return paths, None


def find_comparisons(results_dir: Path) -> list[Path]:
    return sorted(p for p in (Path(results_dir) / COMPARISONS).glob(f"*/{PAIRING_FILE}"))
