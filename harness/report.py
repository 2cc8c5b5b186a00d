"""The text summary of one run, read from its directory alone (never from a live session)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

from . import HarnessError, records, workloads


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
        if path.name in (records.RUN_FILE, "coverage.json"):
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
    if len(table) == 1:
        lines.append("no benchmark records in this run")
    else:
        widths = [max(len(str(row[i])) for row in table) for i in range(len(header))]
        lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in table]
    lines += [f"note: {n}" for n in _dedupe(notes)]
    lines += [f"validation: {name} at {scale}: {verdict}" for name, scale, verdict in validations(run)]
    lines += [f"unreadable record: {name}" for name in run.unreadable]
    if table := coverage_table(run.path):
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


def _num(value, digits):
    return "-" if value is None else f"{value:.{digits}f}"


def _clip(text, limit=150):
    text = text or "no reason given"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _dedupe(items):
    return list(dict.fromkeys(items))
