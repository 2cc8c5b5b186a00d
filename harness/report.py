"""The report step: a run's summary and its CPU-versus-GPU comparison, read from its directory alone.

``comparison`` puts each workload's engines side by side with cost per million rows and the verdict
(``cost.decide``); ``bench`` writes it to ``comparison.json`` in the run directory, which the dashboard
and other tools read. Nothing here touches a live session.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from pathlib import Path

from . import HarnessError, cost, records, workloads
from .coverage import COVERAGE_FILE, executed_fallback


COMPARISON_FILE = "comparison.json"


@dataclass
class Run:
    path: Path
    info: dict | None
    records: list[dict]
    unreadable: list[str]


def latest_run(results_dir: Path) -> Path:
    runs = sorted(p for p in Path(results_dir).glob("*/") if (p / records.RUN_FILE).is_file())
    if not runs:
        raise HarnessError(f"no runs under {results_dir}: run `python -m harness bench --smoke` first")
    return runs[-1]


def load(run_dir: Path) -> Run:
    run_dir = Path(run_dir)
    found, unreadable = [], []
    for path in sorted(run_dir.glob("*.json")):
        if path.name in (records.RUN_FILE, COVERAGE_FILE, COMPARISON_FILE):
            continue
        record = records.read_json(path)
        if record is None or "workload" not in record:
            unreadable.append(path.name)
        else:
            found.append(record)
    return Run(run_dir, records.read_json(run_dir / records.RUN_FILE), found, unreadable)


def validations(run: Run) -> list[tuple[str, str, str]]:
    """(workload, scale, verdict) for every workload and scale that ran on more than one engine."""
    by_case: dict[tuple[str, str], list[dict]] = {}
    for r in run.records:
        if r.get("status") == "ok" and "checksum" in r:
            by_case.setdefault((r["workload"], r["scale"]), []).append(r)
    out = []
    for (name, scale), ran in sorted(by_case.items()):
        if len(ran) < 2:
            continue
        tolerance = workloads.get(name).float_rel_tol if name in workloads.registry() else 1e-9
        base = ran[0]
        problems = [f"{other['engine']} vs {base['engine']}: {p}" for other in ran[1:]
                    for p in workloads.compare(base["checksum"], other["checksum"], tolerance)]
        out.append((name, scale, "MISMATCH: " + "; ".join(problems) if problems else
                    f"outputs agree across {', '.join(r['engine'] for r in ran)}"))
    return out


def _role(record: dict) -> str:
    return record.get("role") or ("cpu" if record["engine"] == "cpu" else "gpu")


def _conf_values(record: dict) -> dict[str, str]:
    return {key: entry["value"] for key, entry in (record.get("config") or {}).items()}


def _engine_entry(record: dict) -> dict:
    side = cost.Side.of(record)
    samples = list(side.samples)
    spent = record.get("cost") or {}
    gpu_found = record.get("gpu_metrics") or {"available": False, "reason": "not measured in this run"}
    return {
        "status": side.status, "reason": side.reason, "role": _role(record), "samples": len(samples),
        "median_s": side.median, "min_s": min(samples, default=None), "max_s": max(samples, default=None),
        "rows": side.rows, "rows_per_s": side.rows / side.median if side.rows and side.median else None,
        "instance": spent.get("instance"), "nodes": spent.get("nodes"), "usd_per_hour": spent.get("usd_per_hour"),
        "cost_per_mrows_usd": spent.get("cost_per_mrows_usd"), "gpu_metrics": gpu_found,
        "spark": record.get("spark_metrics"), "planned_on_cpu": (record.get("planned_operators") or {}).get("cpu"),
        "host_profile": record.get("host_profile"),
    }


def _fallback(gpu_record: dict | None, predicted: dict | None) -> tuple[float | None, str, list[dict]]:
    """The share of the plan off the GPU: from the plan Spark ran when there was a GPU run, else predicted."""
    planned = (gpu_record or {}).get("planned_operators")
    if (fraction := executed_fallback(planned)) is not None:
        ops = [{"op": op, "reason": "ran on the CPU"} for op in _dedupe(planned["cpu"])]
        return fraction, "executed plan", ops
    if predicted:
        ops = [{"op": f["op"], "reason": f["reason"]} for f in predicted["fallbacks"] if f["kind"] == "Exec"]
        return 1 - predicted["fraction"], "predicted plan", ops
    return None, "plan", []


def comparison(run_dir: Path) -> dict:
    """Per workload and scale: each engine's figures, the speedup, break-even, and the verdict with reasons."""
    run = load(run_dir)
    env = (run.info or {}).get("environment", {})
    predicted = (records.read_json(run.path / COVERAGE_FILE) or {}).get("workloads", {})
    agreed = {(name, scale): not verdict.startswith("MISMATCH") for name, scale, verdict in validations(run)}
    cases: dict[tuple, list[dict]] = {}
    for r in run.records:
        cases.setdefault((r["workload"], r["scale"], r.get("variant", "")), []).append(r)
    rows, thresholds, prices = [], None, None
    for (name, scale, variant), found in sorted(cases.items()):
        cpu_record = next((r for r in found if _role(r) == "cpu"), None)
        gpus = sorted((r for r in found if _role(r) == "gpu"), key=lambda r: cost.Side.of(r).median or float("inf"))
        gpu_record = gpus[0] if gpus else None
        some = cpu_record or gpu_record
        conf = _conf_values(cpu_record or {}) or _conf_values(gpu_record or {})
        thresholds = cost.Thresholds.from_conf(conf)
        unpriced = {"missing": "this run's records carry no prices (they predate conf/prices.conf)"}
        prices = some.get("pricing") or {"nodes": 1, "cpu": unpriced, "gpu": unpriced}
        fraction, source, fallbacks = _fallback(gpu_record, predicted.get(name))
        decided = cost.decide(cost.Side.of(cpu_record) if cpu_record else None,
                              cost.Side.of(gpu_record) if gpu_record else None, prices, thresholds, fraction, source)
        engines = {r["engine"]: _engine_entry(r) for r in found}
        if gpu_record:
            engines[gpu_record["engine"]].update(fallback_fraction=fraction, fallback_source=source, fallbacks=fallbacks)
        rows.append({
            "workload": name, "family": some.get("family"), "scale": scale, "variant": variant, "engines": engines,
            "cpu_engine": cpu_record and cpu_record["engine"], "gpu_engine": gpu_record and gpu_record["engine"],
            "speedup": decided.speedup, "speedup_within_noise": decided.within_noise,
            "break_even_speedup": decided.break_even, "verdict": decided.verdict, "reasons": decided.reasons,
            "outputs_agree": agreed.get((name, scale)),
        })
    return {
        "schema": 1, "run": run.path.name, "started": (run.info or {}).get("started"), "commit": env.get("commit"),
        "hostname": env.get("hostname"), "host_profile": {
            "name": (run.info or {}).get("settings", {}).get("host"), "nodes": (prices or {}).get("nodes"),
            "cpu_instance": ((prices or {}).get("cpu") or {}).get("instance"),
            "gpu_instance": ((prices or {}).get("gpu") or {}).get("instance")},
        "prices": prices, "thresholds": thresholds.__dict__ if thresholds else None, "rows": rows,
    }


def write_comparison(run_dir: Path) -> Path:
    path = Path(run_dir) / COMPARISON_FILE
    records.write_json(path, comparison(run_dir))
    return path


def verdict_table(found: dict) -> str:
    """The comparison as text: per workload and scale, time, cost per million rows, speedup and verdict."""
    if not found["rows"]:
        return ""
    header = ("workload", "scale", "cpu s", "gpu s", "speedup", "break-even", "cpu $/M rows", "gpu $/M rows", "verdict")
    table = [header]
    reasons = []
    for row in found["rows"]:
        cpu, gpu = (row["engines"].get(row[f"{role}_engine"], {}) for role in ("cpu", "gpu"))
        label = row["workload"] + (f" [{row['variant']}]" if row["variant"] else "")
        table.append((label, row["scale"], _num(cpu.get("median_s"), 3), _num(gpu.get("median_s"), 3),
                      _num(row["speedup"], 2, "x"), _num(row["break_even_speedup"], 2, "x"),
                      _usd(cpu.get("cost_per_mrows_usd")), _usd(gpu.get("cost_per_mrows_usd")), row["verdict"]))
        reasons += [f"  {label} at {row['scale']}: {reason}" for reason in row["reasons"]]
    t, p = found["thresholds"] or {}, found["prices"] or {}
    lines = ["verdicts (should prep share the accelerators?); thresholds: GPU busy at least "
             f"{t.get('min_gpu_utilization_pct')}%, at most {t.get('max_fallback_fraction', 0):.0%} of the plan off "
             f"the GPU, GPUs idle and already paid for {t.get('idle_gpu_fraction', 0):.0%} of the time (prepbench.verdict.*)"]
    for role in ("cpu", "gpu"):
        price = p.get(role) or {}
        lines.append(f"  {role} runs priced as {p.get('nodes')} x {price.get('instance')}: " + (
            f"${price['usd_per_hour']}/h ({price['date']}, {price['source']})" if "usd_per_hour" in price else price.get("missing", "?")))
    return "\n".join(lines + _columns(table) + ["reasons:"] + reasons)


def coverage_table(run_dir: Path) -> str:
    """Per workload: the share of operators on the GPU plan, and what falls back with the plugin's reason."""
    found = records.read_json(Path(run_dir) / "coverage.json")
    if not found:
        return ""
    if found.get("unavailable"):
        return f"GPU plan coverage: not measured: {found['unavailable']}"
    lines = [f"GPU plan coverage ({found['engine']} engine configuration, plans built at {found['scale']} rows):"]
    width = max((len(n) for n in found["workloads"]), default=8)
    for name, c in found["workloads"].items():
        lines.append(f"  {name.ljust(width)}  {c['fraction']:>5.0%}  on GPU: {len(c['on_gpu'])}, on CPU: "
                     f"{', '.join(c['on_cpu']) or 'none'}")
        for f in _dedupe(f"{f['op']}: {_clip(f['reason'])}" for f in c["fallbacks"] if f["kind"] == "Exec"):
            lines.append(f"  {''.ljust(width)}         ! {f}")
    return "\n".join(lines)


def summary(run_dir: Path) -> str:
    run = load(run_dir)
    lines = [f"run {run.path}"]
    if run.info:
        env = run.info.get("environment", {})
        lines.append(f"host {env.get('hostname')} ({env.get('cores')} cores, {env.get('cpu')}); Spark {env.get('spark')}, "
                     f"RAPIDS plugin {env.get('rapids_plugin')}; commit {(env.get('commit') or 'unknown')[:12]}")
    else:
        lines.append("run.json is missing or unreadable: host and version details are unknown")
    header = ("workload", "engine", "scale", "status", "rows", "median s", "M rows/s", "session s", "warm-up s", "n")
    table = [header]
    notes = []
    for r in sorted(run.records, key=lambda r: (r["workload"], r["scale"], r["engine"], r.get("variant", ""))):
        samples = r.get("samples_s") or []
        median = statistics.median(samples) if samples else None
        table.append((
            r["workload"] + (f" [{r['variant']}]" if r.get("variant") else ""), r["engine"], r["scale"], r.get("status", "?"), f"{r['rows']:,}" if r.get("rows") else "-",
            _num(median, 3), _num(r["rows"] / median / 1e6 if median and r.get("rows") else None, 2),
            _num(_mean(r.get("session_start_s")), 2), _num(_mean(r.get("warmup_s")), 2), str(len(samples)),
        ))
        if r.get("status") == "running":
            notes.append(f"{r['workload']} on {r['engine']} at {r['scale']}: did not finish (process ended early)")
        elif r.get("status") == "skipped":
            notes.append(f"engine {r['engine']} skipped: {r.get('reason')}")
        elif r.get("reason"):
            notes.append(f"{r['workload']} on {r['engine']} at {r['scale']}: {r['status']}: {r['reason']}")
        if (r.get("planned_operators") or {}).get("cpu"):
            notes.append(f"{r['workload']} on {r['engine']} at {r['scale']}: planned on the CPU: "
                         f"{', '.join(_dedupe(r['planned_operators']['cpu']))}")
    lines += _columns(table) if len(table) > 1 else ["no benchmark records in this run"]
    lines += [f"note: {n}" for n in _dedupe(notes)]
    lines += [f"validation: {name} at {scale}: {verdict}" for name, scale, verdict in validations(run)]
    lines += [f"unreadable record: {name}" for name in run.unreadable]
    if table := coverage_table(run.path):
        lines.append(table)
    if table := verdict_table(comparison(run.path)):
        lines.append(table)
    return "\n".join(lines) + "\n"


def problems(run_dir: Path) -> list[str]:
    """What should make a run's command fail: failed benchmarks, unfinished ones, output mismatches."""
    run = load(run_dir)
    bad = [f"{r['workload']}/{r['engine']}/{r['scale']}: {r.get('status')}" for r in run.records
           if r.get("status") in ("failed", "running", "mismatch")]
    bad += [f"{n}/{s}: {v}" for n, s, v in validations(run) if v.startswith("MISMATCH")]
    return bad + [f"unreadable record {n}" for n in run.unreadable]


def _mean(values):
    return statistics.fmean(values) if values else None


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


def _dedupe(items):
    return list(dict.fromkeys(items))
