"""The text summary of an analysis, and what should make a run's command fail: both render ``analysis`` alone.

The summary opens with the answer for the host (one screen): each engine's time against CPU Spark, the
cases it is the cheapest in, the GPU side (measured, or predicted by QualX with the plugin's plan coverage
and the break-even), the engines that could not run here (once each, with why) and where the run's wall time
went. Then one line per case with the engines as columns, the scaling view where several scales ran, and
notes: disagreements, failures and what the accelerators did not run. The reasons behind each verdict are in
``comparison.json`` and on the site. Nothing here recomputes a figure.
"""

from __future__ import annotations

import math
import statistics

from . import analysis as analysis_
from .analysis import Analysis, Case
from .verdict import MEASURED


def summary(found: Analysis) -> str:
    lines = []
    for run in found.runs:
        lines += _header(run)
    lines += _answer(found)
    lines += _timing(found)
    lines.append("")
    lines += cases_table(found)
    if found.scaling:
        lines += ["", *scaling_table(found)]
    notes = _notes(found)
    if notes:
        lines += ["", *notes]
    for run in found.runs:
        if table := coverage_table(run.coverage, brief=True):
            lines += ["", table]
    if found.cases:
        lines += ["", "each verdict's reasons: comparison.json and the site (`python -m harness site`)"]
    return "\n".join(lines) + "\n"


def summary_of(*run_dirs) -> str:
    """The summary of one run, or of several merged (runs of workload subsets or scales)."""
    return summary(analysis_.analyze_dirs(list(run_dirs)))


def _header(run) -> list[str]:
    info = run.info
    lines = [f"run {info.path}"]
    if info.state != "unknown":
        versions = ", ".join(f"{name} {v}" for name, v in (("Spark", info.versions.get("spark")),
                                                           ("RAPIDS plugin", info.versions.get("rapids_plugin")),
                                                           ("Comet", info.versions.get("comet"))) if v)
        gpus = ", ".join(dict.fromkeys(g.get("name") or "?" for g in info.gpus)) or "no GPU"
        lines.append(f"host {info.hostname} ({info.cores} cores, {info.cpu}; {gpus}); {versions}; commit "
                     f"{(info.commit or 'unknown')[:12]}{' (dirty)' if info.dirty else ''}")
    else:
        lines.append("run.json is missing or unreadable: host and version details are unknown")
    if run.interrupted:
        unfinished = ", ".join(f"{r.workload}/{r.engine}/{r.scale}" for r in run.unfinished) or "none recorded"
        state = {"running": "it never recorded its end (killed, or still running)",
                 "interrupted": "it was interrupted"}.get(info.state, "some benchmarks never finished")
        lines.append(f"RUN INCOMPLETE: {state}; benchmarks that never finished: {unfinished}")
    lines += [f"warning: {w}" for w in info.warnings]
    lines += [f"problem: {p}" for p in info.problems]
    return lines


def _answer(found: Analysis) -> list[str]:
    """Per engine: the answer at a glance."""
    if not found.cases:
        return ["no benchmark records to summarize"]
    scales = ", ".join(dict.fromkeys(c.scale for c in found.cases))
    workloads = len({c.label for c in found.cases})
    lines = [f"the answer ({workloads} workload(s) at {scales}; time ratio: the geometric mean of an engine's median "
             "over CPU Spark's, over the cases both ran with agreeing outputs; lower is faster):"]
    ran = [s for s in found.engines if not s.unavailable and s.ran]
    table = [("engine", "role", "ran", "time vs CPU Spark", "cheapest in", "failed")]
    for s in ran:
        if s.role == "gpu":
            continue
        ratio = f"{s.time_ratio:.2f}x ({_faster(s.time_ratio)}, {s.ratio_cases} cases)" if s.time_ratio else (
            "reference" if s.reference_in else "-")
        table.append((s.label, s.role, str(s.ran), ratio, str(s.cheapest_in), str(s.failed) if s.failed else ""))
    lines += ["  " + line for line in _columns(table)]
    lines += _gpu_side(found)
    for s in found.engines:
        if s.unavailable:
            lines.append(f"  not run here: {s.label} ({s.role}): {_clip(s.unavailable.splitlines()[0], 160)}")
    return lines


def _faster(ratio: float) -> str:
    return f"{1 / ratio:.2f}x faster" if ratio < 1 else f"{ratio:.2f}x slower"


def _gpu_side(found: Analysis) -> list[str]:
    """The GPU side: measured where a GPU ran, else QualX's predictions, with plan coverage and break-even."""
    lines = []
    measured = [c for c in found.cases if c.verdict.basis == MEASURED]
    predicted = [c for c in found.cases if c.prediction and c.prediction.speedup]
    not_predicted = [c for c in found.cases if c.prediction and not c.prediction.speedup]
    if not found.gpu_measured:
        lines.append("  GPU: no GPU ran here" + (": its verdicts are predicted by " + predicted[0].prediction.source
                                                + " from CPU Spark's event log, priced as the GPU instance" if predicted
                                                else "; no prediction either (`python -m harness fetch-tools`, then "
                                                     "`python -m harness qualify RUN_DIR`)"))
    if measured:
        speedups = [c.verdict.speedup.value for c in measured if c.verdict.speedup]
        lines.append(f"  GPU measured in {len(measured)} case(s)" + (
            f": median {statistics.median(speedups):.2f}x the cheapest agreeing CPU engine" if speedups else ""))
    if predicted:
        values = [c.prediction.speedup for c in predicted]
        lines.append(f"  GPU predicted by QualX in {len(predicted)} case(s): median {statistics.median(values):.2f}x CPU "
                     f"Spark (from {min(values):.2f}x to {max(values):.2f}x)"
                     + (f"; not predicted in {len(not_predicted)}" if not_predicted else ""))
    coverage = [c.coverage["fraction"] for c in found.cases if c.coverage]
    if coverage:
        lines.append(f"  GPU plan coverage (the RAPIDS plugin's predicted plan): median {statistics.median(coverage):.0%} "
                     f"of operators, {sum(f >= 0.8 for f in coverage)} of {len(coverage)} case(s) at 80% or more")
    evens = sorted({round(c.verdict.break_even, 2) for c in found.cases if c.verdict.break_even})
    if evens:
        lines.append(f"  break-even: a GPU run must be {' to '.join(f'{e:.2f}x' for e in (evens[0], evens[-1]) if e) if len(evens) > 1 else f'{evens[0]:.2f}x'} "
                     "faster than the cheapest CPU engine to cost less")
    counts: dict[str, int] = {}
    for c in found.cases:
        counts[c.verdict.label] = counts.get(c.verdict.label, 0) + 1
    lines.append("  verdicts: " + ", ".join(f"{label} {n}" for label, n in sorted(counts.items())))
    accuracy = found.accuracy
    if accuracy.cases:
        lines.append(f"  QualX against measured GPU runs: median absolute error {accuracy.median_abs_error:.0%} over "
                     f"{len(accuracy.cases)} case(s); the prediction alone would have given another verdict in "
                     f"{len(accuracy.wrong_verdicts)}")
    return lines


def _timing(found: Analysis) -> list[str]:
    lines = []
    for run in found.runs:
        timing = analysis_.run_timing(run)
        if timing is None:
            continue
        parts = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in timing.parts.items() if seconds >= 0.5)
        lines.append(f"wall time {timing.wall_s:.0f} s: {parts}")
        if timing.overhead is not None:
            lines.append(f"  overhead {timing.overhead:.2f}x: wall time over the benchmarks' own work (warm-up, "
                         f"instrumented and timed runs: {timing.work_s:.0f} s; the output checks count as overhead, and so does the "
                         "run a Spark engine fingerprints in the same job; a dataframe engine's checked run, timed apart, "
                         "is its warm-up)")
    return lines


def cases_table(found: Analysis) -> list[str]:
    """One line per case: each engine's median time, QualX's predicted speedup, the plan coverage, break-even and
    the verdict with the engine to use."""
    shown = [c for c in found.cases if any(e.record.status != "undefined" for e in c.engines)]
    if not shown:
        return []
    unavailable = {s.label for s in found.engines if s.unavailable}
    engines = list(dict.fromkeys(e.label for c in shown for e in c.engines
                                 if e.record.status != "undefined" and e.label not in unavailable))
    header = ("workload", "scale", *(f"{e} s" for e in engines), "QualX", "coverage", "break-even", "verdict", "use")
    table = [header]
    for case in shown:
        by_label = {e.label: e.record for e in case.engines}
        v = case.verdict
        table.append((case.label, case.scale, *(_cell(by_label.get(e)) for e in engines),
                      _prediction_cell(case), f"{case.coverage['fraction']:.0%}" if case.coverage else "-",
                      _num(v.break_even, 2, "x"), v.label, v.engine or "-"))
    return ["cases (median seconds of the timed runs; QualX: predicted GPU speedup over CPU Spark; coverage: the "
            "plugin's predicted plan on the GPU):", *_columns(table)]


def _prediction_cell(case: Case) -> str:
    p = case.prediction
    if p is None:
        return "-"
    if not p.speedup:
        return "n/p"
    measured = case.measured_speedup
    return f"{p.speedup:.2f}x" + (f" (meas. {measured:.2f}x)" if measured else "")


def scaling_table(found: Analysis) -> list[str]:
    """Every workload across scales in one table: cost per million rows per engine and scale (* the cheapest
    agreeing engine there), each engine's growth exponent (time ~ rows^k), and the crossovers, named once per
    workload."""
    if not found.scaling:
        return []
    scales = sorted({s for view in found.scaling for s in view.scales}, key=analysis_.scale_sort)
    several_hosts = len({tuple(view.hosts) for view in found.scaling}) > 1
    table = [("workload", "engine", *scales, "k", "crossovers")]
    for view in found.scaling:
        label = view.label + (f" on {', '.join(view.hosts)}" if several_hosts else "")
        for number, engine in enumerate(view.engines):
            by_scale = {p.scale: p for p in engine.points}
            cells = [_usd(by_scale[s].cost_per_mrows_usd) + ("*" if view.cheapest.get(s) == engine.label else "")
                     if s in by_scale else "-" for s in scales]
            table.append((label if number == 0 else "", engine.label, *cells, _num(engine.exponent, 2),
                          view.sentence if number == 0 else ""))
    return ["scaling (cost per million rows by engine and scale, * the cheapest agreeing engine there; k: time grows "
            "as rows^k):", *("  " + line for line in _columns(table))]


def _notes(found: Analysis) -> list[str]:
    notes = []
    for case in found.cases:
        for e in case.engines:
            r = e.record
            where = f"{case.label}/{e.label}/{case.scale}"
            if e.agrees is False:
                notes.append(f"MISMATCH: {where}: its output differs from {case.reference}'s: {'; '.join(e.problems)}")
            elif r.status in ("failed", "running", "interrupted"):
                notes.append(f"{where}: {r.status}" + (f": {_clip(r.reason, 300)}" if r.reason else ""))
            if r.session.get("mode") == "classic" and r.session.get("why") and r.engine not in {n.split()[1] for n in notes if n.startswith("engine ")}:
                notes.append(f"engine {r.engine} ran classic sessions (a JVM per benchmark process): {r.session['why']}")
        weak = [e.label for e in case.engines if (e.record.fingerprint or {}).get("weaker") and not e.record.rows_file]
        if weak:
            notes.append(f"{case.label}/{case.scale}: {case.engines[0].record.fingerprint['weaker']}")
    agreeing = sum(1 for c in found.cases if c.outputs_agree)
    if agreeing:
        notes.append(f"agreement: {agreeing} case(s) where every engine's output agrees with the reference's")
    undefined: dict[str, set] = {}
    for case in found.cases:
        for e in case.engines:
            if e.record.status == "undefined":
                undefined.setdefault(e.label, set()).add(case.workload)
    for label, names in sorted(undefined.items()):
        notes.append(f"engine {label} has no form of {len(names)} workload(s) (not defined, not a failure)")
    for label, ops in _not_accelerated(found).items():
        notes.append(f"not run by {label}'s accelerator in the executed plans: {', '.join(ops)}")
    for run in found.runs:
        notes += [f"unreadable record: {name}: {why}" for name, why in run.unreadable]
        qualification = run.qualification
        if qualification and qualification.get("state") != "ok":
            notes.append(f"QualX did not predict this run: {qualification.get('reason')}")
    return list(dict.fromkeys(notes))


def _not_accelerated(found: Analysis) -> dict[str, list[str]]:
    ops: dict[str, dict[str, None]] = {}
    for case in found.cases:
        for e in case.engines:
            if e.record.plan.get("source") == "executed plan" and e.record.plan.get("other"):
                ops.setdefault(e.label, {}).update(dict.fromkeys(e.record.plan["other"]))
    return {label: list(found) for label, found in ops.items()}


def coverage_table(coverage: dict, brief: bool = False) -> str:
    """The plugin's predicted plan per workload: the share of operators on the GPU, what falls back and why."""
    if not coverage:
        return ""
    if coverage.get("unavailable"):
        return f"GPU plan coverage: not measured: {coverage['unavailable']}"
    lines = [f"GPU plan coverage, predicted by the RAPIDS plugin ({coverage.get('engine')} engine configuration, "
             f"plans built at {coverage.get('scale')} rows):"]
    workloads = coverage.get("workloads") or {}
    width = max((len(n) for n in workloads), default=8)
    for name, c in workloads.items():
        if c.get("error"):
            lines.append(f"  {name.ljust(width)}  could not be explained: {_clip(c['error'])}")
            continue
        lines.append(f"  {name.ljust(width)}  {c['fraction']:>5.0%}  on GPU: {len(c['on_gpu'])}, on CPU: "
                     f"{', '.join(c['on_cpu']) or 'none'}")
        if brief:
            continue
        for f in dict.fromkeys(_fallback_line(f) for f in c["fallbacks"] if f["kind"] == "Exec"):
            lines.append(f"  {''.ljust(width)}         ! {f}")
    return "\n".join(lines)


def _fallback_line(fallback: dict) -> str:
    expressions = ", ".join(fallback.get("expressions") or [])
    return f"{fallback['op']}: {_clip(fallback['reason'])}" + (f" (unsupported: {expressions})" if expressions else "")


def problems(found: Analysis) -> list[str]:
    """What should make a run's command fail, each with its reason: failed, unfinished or mismatched
    benchmarks, outputs that differ from the reference's, unreadable records and set-up failures."""
    bad = []
    for run in found.runs:
        bad += [f"{r.workload}/{r.engine}/{r.scale}: {r.status}" + (f": {r.reason}" if r.reason else "")
                for r in run.records if r.status in ("failed", "running", "interrupted", "mismatch")]
    for case in found.cases:
        bad += [f"{case.workload}/{case.scale}: {e.label}'s output differs from {case.reference}'s: {'; '.join(e.problems)}"
                for e in case.engines if e.agrees is False and e.record.status != "mismatch"]
    for run in found.runs:
        bad += [f"unreadable record {name}: {why}" for name, why in run.unreadable]
        bad += run.info.problems
    return bad


def _cell(record) -> str:
    if record is None:
        return "-"
    if record.ok:
        return _num(record.median_s, 3)
    return {"undefined": "n/a"}.get(record.status, record.status)


def _num(value, digits, suffix=""):
    return "-" if value is None else f"{value:.{digits}f}{suffix}"


def _usd(value):
    """Three significant figures without exponents: $0.0000327, $0.0159."""
    if value is None:
        return "-"
    return f"${value:.{max(2, 2 - math.floor(math.log10(value)))}f}" if value > 0 else "$0"


def _columns(table: list[tuple]) -> list[str]:
    widths = [max(len(str(row[i])) for row in table) for i in range(len(table[0]))]
    return ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in table]


def _clip(text, limit=150):
    text = text or "no reason given"
    return text if len(text) <= limit else text[: limit - 3] + "..."
