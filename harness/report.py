"""The text summary of a run, and what should make a run's command fail: both read the result model alone.

Every figure comes from ``results`` (records, cases, verdicts); nothing here touches a live session or
recomputes a figure.
"""

from __future__ import annotations

import math
from pathlib import Path

from . import results
from .results import Case, Run


def summary(run_dir: Path) -> str:
    run = results.load(run_dir)
    found = results.cases([run])
    lines = [f"run {run.info.path}"] + _header(run)
    lines += _records_table(run)
    lines += [f"note: {n}" for n in dict.fromkeys(_notes(run))]
    lines += _agreement(found)
    lines += [f"unreadable record: {name}: {why}" for name, why in run.unreadable]
    if table := coverage_table(run.coverage):
        lines.append(table)
    if table := executed_coverage_table(run):
        lines.append(table)
    lines += verdict_table(found)
    return "\n".join(lines) + "\n"


def _header(run: Run) -> list[str]:
    info = run.info
    lines = []
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


def _records_table(run: Run) -> list[str]:
    header = ("workload", "engine", "scale", "status", "rows", "median s", "M rows/s", "session s", "warm-up s", "n")
    table = [header]
    for r in sorted(run.records, key=lambda r: (r.workload, results.scale_sort(r.scale), r.variant,
                                                 results.ROLES.index(r.role), r.backend != "spark", r.engine)):
        if r.status == "undefined":
            continue  # listed once per engine in the notes
        table.append((r.workload + (f" [{r.variant}]" if r.variant else ""), r.engine, r.scale, r.status,
                      f"{r.rows:,}" if r.rows else "-", _num(r.median_s, 3),
                      _num(r.rows_per_s / 1e6 if r.rows_per_s else None, 2), _num(_mean(r.session_start_s), 2),
                      _num(_mean(r.warmup_s), 2), str(len(r.samples_s))))
    return _columns(table) if len(table) > 1 else ["no benchmark records in this run"]


def _notes(run: Run) -> list[str]:
    notes = []
    undefined: dict[str, list[str]] = {}
    for r in run.records:
        where = f"{r.workload} under {r.engine} at {r.scale}"
        if r.status == "skipped":
            notes.append(f"engine {r.engine} skipped: {r.reason}")
        elif r.status == "undefined":
            undefined.setdefault(r.engine, []).append(r.workload)
        elif r.status in ("running", "interrupted"):
            notes.append(f"{where}: did not finish ({r.status})")
        elif r.reason:
            notes.append(f"{where}: {r.status}: {r.reason}")
        if r.session.get("mode") == "classic" and r.session.get("why"):
            notes.append(f"engine {r.engine} ran classic sessions (a JVM per benchmark process): {r.session['why']}")
        if r.plan.get("source") == "executed plan" and r.plan.get("other"):
            notes.append(f"{where}: not run by {r.plan.get('accelerator')}: {', '.join(dict.fromkeys(r.plan['other']))}")
    for engine, names in sorted(undefined.items()):
        notes.append(f"engine {engine} has no form of {len(names)} workload(s) (not defined, not a failure): "
                     f"{', '.join(sorted(set(names)))}")
    return notes


def _agreement(found: list[Case]) -> list[str]:
    lines = []
    for case in found:
        compared = [e for e in case.engines if e.agrees is not None]
        if len(compared) < 2 and case.outputs_agree is not False:
            continue
        where = f"{case.workload}{' [' + case.variant + ']' if case.variant else ''} at {case.scale}"
        if case.outputs_agree:
            rows = "rows compared one by one" if all(e.record.rows_file for e in compared) else "fingerprints"
            lines.append(f"agreement: {where}: outputs agree across {', '.join(e.label for e in compared)} ({rows})")
        else:
            problems = [f"{e.label} vs {case.reference}: {p}" for e in case.engines if e.agrees is False for p in e.problems]
            lines.append(f"agreement: {where}: MISMATCH: " + "; ".join(problems))
    return lines


def coverage_table(coverage: dict) -> str:
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
        for f in dict.fromkeys(_fallback_line(f) for f in c["fallbacks"] if f["kind"] == "Exec"):
            lines.append(f"  {''.ljust(width)}         ! {f}")
    return "\n".join(lines)


def _fallback_line(fallback: dict) -> str:
    expressions = ", ".join(fallback.get("expressions") or [])
    return f"{fallback['op']}: {_clip(fallback['reason'])}" + (f" (unsupported: {expressions})" if expressions else "")


def executed_coverage_table(run: Run) -> str:
    """Per accelerated engine and workload: the operators that ran natively and why the others did not."""
    lines = []
    for engine in dict.fromkeys(r.engine for r in run.records if r.plan.get("source") == "executed plan"):
        chosen = sorted((r for r in run.records if r.engine == engine and r.plan.get("source") == "executed plan"),
                        key=lambda r: (r.workload, results.scale_sort(r.scale)))
        accelerator = chosen[0].plan.get("accelerator") or engine
        lines.append(f"plan coverage of {engine} ({accelerator}), from the plans that ran:")
        width = max(len(r.workload) for r in chosen)
        for r in chosen:
            share = 1 - (r.fallback_fraction or 0)
            lines.append(f"  {r.workload.ljust(width)} @{r.scale:<5} {share:>5.0%}  accelerated: {len(r.plan.get('accelerated') or [])}, "
                         f"not: {', '.join(dict.fromkeys(r.plan.get('other') or [])) or 'none'}")
            for f in dict.fromkeys(_fallback_line(f) for f in r.plan.get("fallbacks") or []):
                lines.append(f"  {''.ljust(width)}                ! {f}")
    return "\n".join(lines)


def verdict_table(found: list[Case]) -> list[str]:
    """Per workload and scale: every engine's time and cost per million rows, the best GPU engine's speedup
    over the cheapest CPU engine that agreed, break-even, and the verdict with the engine to use."""
    decided = [c for c in found if c.engines and any(e.record.status != "undefined" for e in c.engines)]
    if not decided:
        return []
    engines = list(dict.fromkeys(e.label for c in decided for e in sorted(c.engines, key=results.role_order)
                                 if e.record.status != "undefined"))
    times = [("workload", "scale", *(f"{e} s" for e in engines))]
    costs = [("workload", "scale", *(f"{e} $/M rows" for e in engines))]
    verdicts = [("workload", "scale", "vs", "speedup", "break-even", "verdict", "engine")]
    reasons = []
    for case in decided:
        label = case.workload + (f" [{case.variant}]" if case.variant else "")
        by_label = {e.label: e.record for e in case.engines}
        times.append((label, case.scale, *(_cell(by_label.get(e), lambda r: _num(r.median_s, 3)) for e in engines)))
        costs.append((label, case.scale, *(_cell(by_label.get(e), lambda r: _usd(r.cost_per_mrows_usd)) for e in engines)))
        v = case.verdict
        verdicts.append((label, case.scale, v.compared_with or "-", _num(v.speedup, 2, "x"), _num(v.break_even, 2, "x"),
                         v.verdict, v.engine or "-"))
        reasons += [f"  {label} at {case.scale}: {reason}" for reason in v.reasons]
    thresholds = decided[0].engines[0].record.thresholds
    prices = {}
    for case in decided:
        for e in case.engines:
            p = e.record.price
            prices.setdefault(e.role, f"  {e.role} engines priced as {p.nodes} x {p.instance}: " + (
                f"${p.usd_per_hour}/h ({p.date}, {p.source})" if p.usd_per_hour is not None else p.missing or "?"))
    return (["times (median of the timed runs):"] + _columns(times)
            + ["cost per million rows (nodes x price per hour x median time / rows):"] + _columns(costs)
            + ["verdicts (should prep share the accelerators, and on which engine?); thresholds: GPU busy at least "
               f"{thresholds.min_gpu_utilization_pct:g}%, at most {thresholds.max_fallback_fraction:.0%} of the plan off "
               f"the GPU, GPUs idle and already paid for {thresholds.idle_gpu_fraction:.0%} of the time (prepbench.verdict.*)"]
            + list(prices.values()) + _columns(verdicts) + ["reasons:"] + reasons)


def _cell(record, show) -> str:
    if record is None:
        return "-"
    if record.status == "ok":
        return show(record)
    return {"undefined": "n/a"}.get(record.status, record.status)


def problems(run_dir: Path) -> list[str]:
    """What should make a run's command fail, each with its reason: failed, unfinished or mismatched
    benchmarks, outputs that differ, unreadable records and set-up failures."""
    run = results.load(run_dir)
    bad = [f"{r.workload}/{r.engine}/{r.scale}: {r.status}" + (f": {r.reason}" if r.reason else "")
           for r in run.records if r.status in ("failed", "running", "interrupted", "mismatch")]
    for case in results.cases([run]):
        bad += [f"{case.workload}/{case.scale}: {e.label}'s output differs from {case.reference}'s: {'; '.join(e.problems)}"
                for e in case.engines if e.agrees is False and e.record.status != "mismatch"]
    bad += [f"unreadable record {name}: {why}" for name, why in run.unreadable]
    return bad + run.info.problems


def _mean(values):
    return sum(values) / len(values) if values else None


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
