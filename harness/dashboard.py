"""The published comparison site: run directories in, one static directory out.

``index.html`` puts CPU and GPU side by side for every workload (time, rows/s, cost per million rows, speedup
against the break-even line, GPU utilization over the run, GPU memory, energy, the operators left on the CPU,
the verdict and its reasons) under a sortable summary table and inline SVG charts. ``comparison.csv`` and
``comparison.json`` hold the same table for other tools, and ``asv/`` is asv's own history site.

A run's ``comparison.json`` (written by the report step) is the source of costs, GPU metrics and verdicts;
its records give what they can without it (times, rows/s), and the page says what is missing rather than
failing. Runs from several hosts merge: each row names its host, date, commit and configuration, and the
newest run wins where one host ran the same case twice. The page is self-contained (inline CSS, JS and SVG,
nothing from the network), every string from the results is escaped, and its content security policy lets
only its own script run. The site is built next to its destination and swapped in whole.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import html
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from . import records
from .coverage import COVERAGE_FILE
from .report import COMPARISON_FILE

COMPARISON_SCHEMA = 1
ENGINES = ("cpu", "gpu")  # compared side by side; any other engine shows in its workload's details
RUN_KINDS = ("runs", "smoke")  # where `bench` puts run directories under results/
_NOT_RECORDS = (records.RUN_FILE, COVERAGE_FILE, COMPARISON_FILE)
_ENGINE_FIELDS = ("median_s", "min_s", "max_s", "samples", "rows", "rows_per_s", "cost_per_mrows_usd")
_GPU_METRICS = ("util_mean_pct", "util_p95_pct", "memory_peak_bytes", "energy_j", "energy_per_mrows_j")
FIELDS = (  # the exported table's columns, in order
    "run", "hostname", "host_profile", "started", "commit", "worktree_dirty", "workload", "family", "scale",
    "variant", "source",
    *(f"{engine}_{field}" for engine in ENGINES for field in ("status", *_ENGINE_FIELDS, "instance")),
    *(f"gpu_{metric}" for metric in _GPU_METRICS), "gpu_fallback_fraction", "gpu_fallbacks",
    "speedup", "speedup_within_noise", "break_even_speedup", "verdict", "reasons", "outputs_agree",
)


@dataclass
class Results:
    runs: list[dict]  # what each run directory says about itself
    rows: list[dict]  # one per host x workload x scale x variant, from the newest run that has it
    missing: list[str]  # what could not be read or is absent, in words, for the page


# ---------------------------------------------------------------------------------------------- reading


def find_runs(results_dir: Path) -> list[Path]:
    """Every run directory `bench` made under results/ (runs/ and smoke/), oldest first."""
    return sorted(path for kind in RUN_KINDS for path in (Path(results_dir) / kind).glob("*")
                  if path.is_dir() and not path.name.startswith("."))


def collect(run_dirs) -> Results:
    runs, rows, missing = [], [], []
    for run_dir in map(Path, run_dirs):
        run, run_rows, problems = _read_run(run_dir)
        runs.append(run)
        rows += run_rows
        missing += [f"{run_dir}: {problem}" for problem in problems]
    newest = {}
    for row in sorted(rows, key=lambda r: (r["run"]["started"] or "", r["run"]["name"])):
        newest[(row["run"]["hostname"], row["run"]["profile"], row["workload"], row["scale"], row["variant"])] = row
    for run in runs:
        run["rows_shown"] = sum(1 for row in newest.values() if row["run"] is run)
    shown = sorted(newest.values(), key=lambda r: (r["workload"], _scale_rows(r["scale"]), r["variant"],
                                                   r["run"]["hostname"] or ""))
    return Results(runs, shown, missing)


def _read_run(run_dir: Path) -> tuple[dict, list[dict], list[str]]:
    """One run's rows: built from its records, then overlaid with its comparison.json where it has one."""
    problems = []
    info = records.read_json(run_dir / records.RUN_FILE)
    if not isinstance(info, dict):
        state = "unreadable" if (run_dir / records.RUN_FILE).exists() else "missing"
        problems.append(f"{records.RUN_FILE} is {state}: host, date and commit are unknown")
        info = {}
    found, unreadable = _records(run_dir)
    problems += [f"record {name} is unreadable (not JSON, or not a benchmark record)" for name in unreadable]
    comparison, comparison_rows, comparison_problems = _comparison(run_dir)
    problems += comparison_problems
    run = _run_info(run_dir, info, comparison, len(found))
    rows = {}
    for record in found:
        key = (record["workload"], record["scale"], _text(record.get("variant")) or "")
        row = rows.setdefault(key, {"workload": key[0], "family": record.get("family"), "scale": key[1],
                                    "variant": key[2], "engines": {}})
        row["engines"][record["engine"]] = _engine_from_record(record)
    for extra in comparison_rows:
        key = (extra["workload"], _text(extra.get("scale")) or "", _text(extra.get("variant")) or "")
        rows[key] = _overlay(rows.get(key, {"engines": {}}), extra)
        rows[key].update(workload=key[0], scale=key[1], variant=key[2], source=COMPARISON_FILE)
    predicted = _predicted_fallbacks(run_dir)
    for row in rows.values():
        row.setdefault("source", "records only")
        row.update(run=run, predicted=predicted.get(row["workload"]))
        _derive(row)
        if any(_dict(e).get("status") == "running" for e in row["engines"].values()):
            problems.append(f"{row['workload']} at {row['scale']} did not finish (its record still says running)")
    if not rows:
        problems.append("no benchmark results in this run")
    return run, list(rows.values()), problems


def _records(run_dir: Path) -> tuple[list[dict], list[str]]:
    """The run's benchmark records, and the names of the files that are not readable records."""
    found, unreadable = [], []
    for path in sorted(run_dir.glob("*.json")):
        if path.name in _NOT_RECORDS:
            continue
        record = records.read_json(path)
        if isinstance(record, dict) and all(isinstance(record.get(k), str) for k in ("workload", "engine", "scale")):
            found.append(record)
        else:
            unreadable.append(path.name)
    return found, unreadable


def _comparison(run_dir: Path) -> tuple[dict, list[dict], list[str]]:
    """comparison.json's run-level facts, its usable rows, and what was wrong with it."""
    path = run_dir / COMPARISON_FILE
    found = records.read_json(path)
    if not path.exists():
        return {}, [], [f"no {COMPARISON_FILE}: cost, break-even, GPU metrics and verdicts are unknown; "
                         "times and rows/s come from the records"]
    if not isinstance(found, dict):
        return {}, [], [f"{COMPARISON_FILE} is unreadable: cost, break-even, GPU metrics and verdicts are unknown"]
    if found.get("schema") != COMPARISON_SCHEMA:
        return {}, [], [f"{COMPARISON_FILE} has schema {found.get('schema')!r}; this page reads schema "
                        f"{COMPARISON_SCHEMA}: cost, break-even, GPU metrics and verdicts are unknown"]
    rows, problems = [], []
    for number, row in enumerate(_list(found.get("rows")), 1):
        if isinstance(row, dict) and isinstance(row.get("workload"), str):
            rows.append(row)
        else:
            problems.append(f"{COMPARISON_FILE} row {number} is not a workload row: left out")
    if not isinstance(found.get("rows"), list):
        problems.append(f"{COMPARISON_FILE} has no list of rows")
    return found, rows, problems


def _run_info(run_dir: Path, info: dict, comparison: dict, n_records: int) -> dict:
    env, settings = _dict(info.get("environment")), _dict(info.get("settings"))
    profile = _dict(comparison.get("host_profile"))
    return {
        "name": run_dir.name,
        "path": str(run_dir),
        "hostname": _text(comparison.get("hostname")) or _text(env.get("hostname")),
        "profile": _text(profile.get("name")) or _text(settings.get("host")),
        "started": _text(comparison.get("started")) or _text(info.get("started")),
        "commit": _text(comparison.get("commit")) or _text(env.get("commit")),
        "dirty": env.get("worktree_dirty") is True,
        "cpu": _text(env.get("cpu")),
        "cores": _num(env.get("cores")),
        "gpus": [_text(g.get("name")) or "?" for g in _list(env.get("gpus")) if isinstance(g, dict)],
        "spark": _text(env.get("spark")),
        "rapids_plugin": _text(env.get("rapids_plugin")),
        "overrides": [o for o in _list(settings.get("overrides")) if isinstance(o, str)],
        "records": n_records,
        "comparison": bool(comparison),
    }


def _engine_from_record(record: dict) -> dict:
    """What one record says without prices or GPU metrics: status, time and its spread, rows/s."""
    samples = [s for s in _list(record.get("samples_s")) if _num(s) is not None]
    median, rows = (statistics.median(samples) if samples else None), _num(record.get("rows"))
    planned_on_cpu = _list(_dict(record.get("planned_operators")).get("cpu"))
    return {
        "status": _text(record.get("status")) or "unknown",
        "reason": _text(record.get("reason")),
        "median_s": median,
        "min_s": min(samples, default=None),
        "max_s": max(samples, default=None),
        "samples": len(samples),
        "rows": rows,
        "rows_per_s": rows / median if rows and median else None,
        "fallbacks": [{"op": op, "reason": "planned on the CPU (the record gives no reason)"}
                      for op in dict.fromkeys(o for o in planned_on_cpu if isinstance(o, str))],
        "record_config": _dict(record.get("config")),  # comparison.json's "config" is only a pointer to it
    }


def _predicted_fallbacks(run_dir: Path) -> dict[str, dict]:
    """coverage.json's prediction per workload: what the plugin said it would leave on the CPU."""
    found = _dict(records.read_json(run_dir / COVERAGE_FILE))
    return {name: {"fraction": _num(c.get("fraction")), "scale": _text(found.get("scale")),
                   "fallbacks": [f for f in _list(c.get("fallbacks")) if _dict(f).get("kind") == "Exec"]}
            for name, c in _dict(found.get("workloads")).items() if isinstance(c, dict)}


def _overlay(base: dict, extra: dict) -> dict:
    """`base` with every non-null value of `extra` on top, nested objects merged the same way."""
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _overlay(merged[key], value)
        elif value is not None:
            merged[key] = value
    return merged


def _derive(row: dict) -> None:
    """What the records alone allow where comparison.json does not say: speedup, noise, output agreement."""
    engines = row["engines"] = {k: v for k, v in _dict(row.get("engines")).items() if isinstance(v, dict)}
    cpu, gpu = (engines.get(e, {}) for e in ENGINES)
    ok = [e for e in engines.values() if e.get("status") == "ok"]
    if _num(row.get("speedup")) is None and cpu.get("status") == gpu.get("status") == "ok":
        cpu_s, gpu_s = _num(cpu.get("median_s")), _num(gpu.get("median_s"))
        row["speedup"] = cpu_s / gpu_s if cpu_s and gpu_s else None
    if not isinstance(row.get("speedup_within_noise"), bool):
        row["speedup_within_noise"] = _ranges_overlap(cpu, gpu)
    if not isinstance(row.get("outputs_agree"), bool):  # each trial compared itself with the run's others
        mismatch = any(e.get("status") == "mismatch" for e in engines.values())
        row["outputs_agree"] = False if mismatch else (True if len(ok) > 1 else None)


def _ranges_overlap(a: dict, b: dict) -> bool | None:
    """Whether two engines' [min, max] sample ranges overlap; unknown with fewer than two samples each."""
    if min(_num(a.get("samples")) or 0, _num(b.get("samples")) or 0) < 2:
        return None
    bounds = [_num(e.get(k)) for e in (a, b) for k in ("min_s", "max_s")]
    if None in bounds:
        return None
    a_min, a_max, b_min, b_max = bounds
    return a_min <= b_max and b_min <= a_max


def table(rows: list[dict]) -> list[dict]:
    """The summary table, flat and typed: the same rows for the page, the CSV and the JSON export."""
    out = []
    for row in rows:
        run = row["run"]
        gpu = row["engines"].get("gpu", {})
        metrics = _dict(gpu.get("gpu_metrics"))
        flat = {"run": run["name"], "hostname": run["hostname"], "host_profile": run["profile"],
                "started": run["started"], "commit": run["commit"], "worktree_dirty": run["dirty"],
                "workload": row["workload"], "family": _text(row.get("family")), "scale": row["scale"],
                "variant": row["variant"], "source": row["source"]}
        for name in ENGINES:
            engine = row["engines"].get(name, {})
            flat[f"{name}_status"] = _text(engine.get("status")) or "not run"
            flat |= {f"{name}_{field}": _num(engine.get(field)) for field in _ENGINE_FIELDS}
            flat[f"{name}_instance"] = _text(engine.get("instance"))
        flat |= {f"gpu_{metric}": _num(metrics.get(metric)) for metric in _GPU_METRICS}
        flat |= {
            "gpu_fallback_fraction": _num(gpu.get("fallback_fraction")),
            "gpu_fallbacks": ", ".join(dict.fromkeys(op for op, _ in _fallbacks(gpu.get("fallbacks")))),
            "speedup": _num(row.get("speedup")),
            "speedup_within_noise": row["speedup_within_noise"],
            "break_even_speedup": _num(row.get("break_even_speedup")),
            "verdict": _text(row.get("verdict")),
            "reasons": "; ".join(_texts(row.get("reasons"))),
            "outputs_agree": row["outputs_agree"],
        }
        out.append(flat)
    return out


# ---------------------------------------------------------------------------------------------- writing


def build(run_dirs, out: Path, asv_results: Path | None = None, progress=print) -> Path:
    """Write the site for `run_dirs` (with asv's history published from `asv_results`, if it has any) to
    `out`, replacing what was there only once the new site is complete. Returns the page's path."""
    out = Path(out).absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    results = collect(run_dirs)
    work = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.new-"))
    try:
        asv_published = _publish_asv(asv_results, work / "asv", results.missing)
        flat = table(results.rows)
        (work / "index.html").write_text(page(results, flat, asv_published))
        with open(work / "comparison.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=FIELDS)
            writer.writeheader()
            writer.writerows(flat)
        export = {"schema": 1, "generated": _now(), "missing": results.missing, "rows": flat,
                  "runs": results.runs}
        (work / "comparison.json").write_text(json.dumps(export, indent=1) + "\n")
        os.chmod(work, 0o755)  # mkdtemp's directory is private; the site is for publishing
        _swap_in(work, out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    index = out / "index.html"
    missing = f"; {_count(len(results.missing), 'thing')} missing, listed on the page" if results.missing else ""
    (progress or (lambda message: None))(
        f"comparison site written to {index} ({_count(len(results.rows), 'row')} from "
        f"{_count(len(results.runs), 'run')}"
        f"{missing}); open it in a browser, or serve it: python3 -m http.server -d {out}")
    return index


def _swap_in(new: Path, out: Path) -> None:
    """Readers see the old site or the new one, never a half-written one."""
    if not out.exists():
        os.replace(new, out)
        return
    old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.old-")) / "site"
    os.replace(out, old)
    try:
        os.replace(new, out)
    except OSError:
        os.replace(old, out)
        raise
    shutil.rmtree(old.parent)


def _publish_asv(asv_results: Path | None, html_dir: Path, missing: list[str]) -> bool:
    """asv's history site into html_dir, from a configuration pointing at asv_results; False if none."""
    if asv_results is None or not (Path(asv_results) / "benchmarks.json").is_file():
        return False
    conf = html_dir.parent / ".asv.conf.json"
    conf.write_text(json.dumps(records.asv_config(results_dir=str(Path(asv_results).absolute()),
                                                  html_dir=str(html_dir))))
    try:
        done = subprocess.run([sys.executable, "-m", "asv", "publish", "--no-pull", "--config", str(conf)],
                              capture_output=True, text=True, timeout=600)
    finally:
        conf.unlink()
    if done.returncode != 0 or not (html_dir / "index.html").is_file():
        missing.append(f"asv's history site could not be published from {asv_results}: "
                       f"{(done.stderr or done.stdout).strip()[-500:]}")
        return False
    return True


# ---------------------------------------------------------------------------------------------- the page


_CSS = """
:root { --cpu: #4e79a7; --gpu: #59a14f; --win: #2e7d32; --loss: #c62828; --noise: #8a8a8a; --line: #222; }
body { font: 14px/1.45 system-ui, sans-serif; margin: 0 auto; padding: 1rem 1.5rem 3rem; max-width: 1600px; }
h1 { font-size: 1.5rem; margin-bottom: .2rem; } h2 { margin-top: 2rem; border-bottom: 1px solid #ddd; }
.lede, .note { color: #555; } .note { font-size: .9em; }
.missing { background: #fff8e1; border: 1px solid #f0c36d; padding: .4rem 1rem; border-radius: 4px; }
.missing h2 { margin-top: .4rem; border: 0; }
table { border-collapse: collapse; }
td, th { padding: .25rem .5rem; border-bottom: 1px solid #eee; vertical-align: top; }
.scroll { overflow-x: auto; } #summary { font-size: 12.5px; } #summary td, #summary th { padding: .2rem .4rem; }
#summary td { white-space: nowrap; } #summary td.num { text-align: right; }
#summary th button { font: inherit; font-weight: 600; background: none; border: 0; cursor: pointer; padding: 0; }
#summary th[aria-sort=ascending] button::after { content: " \\25B2"; }
#summary th[aria-sort=descending] button::after { content: " \\25BC"; }
#summary tbody tr:hover { background: #f5f8ff; }
.badge { display: inline-block; border-radius: 3px; padding: 0 .35em; font-size: .8em; color: #fff;
         background: var(--noise); }
.badge.share, .badge.faster { background: var(--win); } .badge.keep-on-cpu, .badge.slower { background: var(--loss); }
.dim, small { color: #777; }
figure { margin: 1rem 0 2rem; } figcaption { font-weight: 600; margin-bottom: .3rem; }
svg.chart { max-width: 100%; height: auto; font: 11px system-ui, sans-serif; }
svg .cpu { fill: var(--cpu); } svg .gpu { fill: var(--gpu); } svg .win { fill: var(--win); }
svg .loss { fill: var(--loss); } svg .noise { fill: var(--noise); } svg .axis { stroke: #bbb; }
svg .marker { stroke: var(--line); stroke-width: 2; } svg .even { stroke: #999; stroke-dasharray: 3 3; }
svg.spark { vertical-align: middle; } svg.spark rect { fill: #f1f1f1; }
svg.spark polyline { fill: none; stroke: var(--gpu); stroke-width: 1.2; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: .2rem 1rem 1rem; margin: 1rem 0; }
.card h3 { margin-bottom: .2rem; } .side th { text-align: left; font-weight: 500; color: #555; }
.side td { min-width: 16rem; } #runs td { white-space: nowrap; }
details { margin-top: .4rem; } details table { font-size: 12px; }
"""

# Sorts the summary table by the clicked column: numbers as numbers, empty cells last either way.
_JS = """
for (const table of document.querySelectorAll("table.sortable")) {
  const body = table.tBodies[0];
  table.querySelectorAll("thead th").forEach((th, column) => {
    th.querySelector("button").addEventListener("click", () => {
      const ascending = th.getAttribute("aria-sort") !== "ascending";
      table.querySelectorAll("thead th").forEach(h => h.removeAttribute("aria-sort"));
      th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      const value = row => row.cells[column].dataset.v;
      const rows = Array.from(body.rows);
      const numeric = rows.every(r => value(r) === "" || !isNaN(Number(value(r))));
      rows.sort((a, b) => {
        const x = value(a), y = value(b);
        if (x === "" || y === "") return (x === "") - (y === "");
        const order = numeric ? Number(x) - Number(y) : x.localeCompare(y);
        return ascending ? order : -order;
      });
      body.append(...rows);
    });
  });
}
"""


def page(results: Results, flat: list[dict], asv_published: bool) -> str:
    """index.html: every value from the results goes through _e (HTML-escaped) on its way in."""
    hosts = {r["hostname"] for r in results.runs if r["hostname"]}
    links = [("comparison.csv", "CSV"), ("comparison.json", "JSON")]
    if asv_published:
        links.insert(0, ("asv/index.html", "asv's history across commits and hosts"))
    asv_note = ("Unlike this page, asv's own pages (asv 0.6's template) load jQuery, flot and Bootstrap from "
                "CDNs and their data with XHR: browse them served (`python3 -m http.server -d` this directory) "
                "with network access." if asv_published else
                "asv's history is not part of this site: `python -m harness site` publishes results/asv.")
    csp = (f"default-src 'none'; script-src '{_sha256(_JS)}'; style-src '{_sha256(_CSS)}'; img-src data:; "
           "base-uri 'none'; form-action 'none'")
    body = [
        "<h1>Should data preparation share the GPUs?</h1>",
        "<p class=lede>CPU Spark against the RAPIDS Accelerator, workload by workload: "
        f"{_count(len(flat), 'row')} from {_count(len(results.runs), 'run')} on {_count(len(hosts), 'host')}. "
        f"Built {_e(_date(_now()))}. "
        + " · ".join(f"<a href=\"{href}\">{text}</a>" for href, text in links) + "</p>",
        f"<p class=note>{_e(asv_note)}</p>",
    ]
    if results.missing:
        body.append("<section class=missing id=missing><h2>What is missing</h2><ul>"
                    + "".join(f"<li>{_e(m)}</li>" for m in results.missing) + "</ul></section>")
    body += [_summary(results.rows, flat), _charts(results.rows, flat),
             "<section id=details><h2>Workloads</h2>" + "".join(_card(i, row) for i, row in enumerate(results.rows))
             + ("" if results.rows else "<p>No results.</p>") + "</section>",
             _runs_table(results.runs)]
    return ("<!doctype html>\n<html lang=en><head><meta charset=utf-8>"
            "<meta name=viewport content=\"width=device-width, initial-scale=1\">"
            f"<meta http-equiv=Content-Security-Policy content=\"{csp}\">"
            "<link rel=icon href=\"data:,\"><title>prepbench: CPU vs GPU comparison</title>"
            f"<style>{_CSS}</style></head>\n<body>\n" + "\n".join(body) + f"\n<script>{_JS}</script>\n</body></html>\n")


_HOW_TO_READ = (
    "Speedup is the CPU's median time over the GPU's. Break-even is the GPU node's price per hour over the CPU "
    "node's: below it, the GPU run costs more than the CPU run on dedicated nodes. Where the two engines' "
    "[min, max] ranges of repeats overlap, the difference is marked within noise and counted as no win; with "
    "fewer than two repeats the noise is unknown. Click a column to sort; a workload's name leads to its details."
)


def _summary(rows: list[dict], flat: list[dict]) -> str:
    columns = (("workload", "Workload"), ("scale", "Scale"), ("verdict", "Verdict"), ("speedup", "Speedup"),
               ("break_even_speedup", "Break-even"), ("cpu_median_s", "CPU s"), ("gpu_median_s", "GPU s"),
               ("cpu_rows_per_s", "CPU M rows/s"), ("gpu_rows_per_s", "GPU M rows/s"),
               ("cpu_cost_per_mrows_usd", "CPU $/M rows"), ("gpu_cost_per_mrows_usd", "GPU $/M rows"),
               ("gpu_util_mean_pct", "GPU util."), ("hostname", "Host"), ("started", "Date"), ("commit", "Commit"))
    head = "".join(f"<th data-key={key}><button type=button>{_e(label)}</button></th>" for key, label in columns)
    body = "".join("<tr>" + "".join(_cell(i, row, f, key) for key, _ in columns) + "</tr>"
                   for i, (row, f) in enumerate(zip(rows, flat)))
    empty = "" if rows else "<p>No results to compare: see what is missing above.</p>"
    return (f"<section><h2>Summary</h2><p class=note>{_e(_HOW_TO_READ)}</p>"
            f"<div class=scroll><table id=summary class=sortable><thead><tr>{head}</tr></thead><tbody>{body}</tbody>"
            f"</table></div>{empty}</section>")


def _cell(i: int, row: dict, flat: dict, key: str) -> str:
    """One summary cell: the shown text, and the raw value it sorts by (data-v)."""
    value, text, title, numeric = flat.get(key), None, None, True
    engine = key.split("_", 1)[0]
    if key == "workload":
        variant = f" <small>{_e(row['variant'])}</small>" if row["variant"] else ""
        numeric, text = False, f"<a href=\"#row-{i}\">{_e(value)}</a>{variant}"
    elif key == "hostname":
        numeric, text, title = False, _e(value or "unknown"), _configuration(row, list(row["engines"]))
    elif key == "started":
        numeric, text, title = False, _e(_date(value).removesuffix(" UTC")), value
    elif key == "commit":
        numeric, text, title = False, _e(_commit(row["run"])), value
    elif key.endswith(("_median_s", "_rows_per_s")) and flat[f"{engine}_status"] != "ok":
        status = flat[f"{engine}_status"]  # say why there is no figure: skipped, failed, running, not run
        value, text = None, f"<span class=dim>{_e(status)}</span>"
        title = _text(row["engines"].get(engine, {}).get("reason")) or status
    elif key.endswith("_median_s"):
        text = _e(_sig(value)) if value is not None else ""
        title = (f"median of {_text_num(flat[engine + '_samples'])} runs; min {_sig(flat[engine + '_min_s'])} s, "
                 f"max {_sig(flat[engine + '_max_s'])} s")
    elif key.endswith("_rows_per_s"):
        text = _e(_sig(value / 1e6)) if value is not None else ""
    elif key.endswith("_usd"):
        text = _e(_usd(value)) if value is not None else ""
    elif key == "speedup":
        text = f"{_e(_times(value))} {_noise_badge(row)}" if value is not None else ""
    elif key == "break_even_speedup":
        text = _e(_times(value)) if value is not None else ""
    elif key == "gpu_util_mean_pct":
        gpus = [g for g in _list(_dict(row["engines"].get("gpu", {}).get("gpu_metrics")).get("gpus"))
                if isinstance(g, dict)]
        text = (_e(_pct(value)) + " " if value is not None else "") + (
            _sparkline(gpus[0], row, small=True) if gpus else "")
    elif key == "verdict":
        numeric, title = False, "; ".join(_texts(row.get("reasons"))) or None
        text = f"<span class=\"badge {_e(value)}\">{_e(value)}</span>" if value else "<span class=dim>none</span>"
        if not value:
            title = title or "no verdict: no comparison.json row for it"
    else:
        numeric = False
    sort = "" if value is None else (repr(value) if numeric else str(value))
    cls = " class=num" if numeric else ""
    title_attr = f" title=\"{_e(title)}\"" if title else ""
    return f"<td data-v=\"{_e(sort)}\"{cls}{title_attr}>{_e(value) if text is None else text}</td>"


def _noise_badge(row: dict) -> str:
    """Faster or slower only when the difference is outside the spread of repeats."""
    within = row["speedup_within_noise"]
    if within is None:
        return ("<span class=badge title=\"fewer than two repeats per engine: the spread is unknown\">"
                "noise unknown</span>")
    if within:
        return "<span class=badge title=\"the engines' ranges of repeats overlap\">within noise</span>"
    faster = _num(row["speedup"]) > 1
    return f"<span class=\"badge {'faster' if faster else 'slower'}\">GPU {'faster' if faster else 'slower'}</span>"


def _charts(rows: list[dict], flat: list[dict]) -> str:
    labelled = [(_label(row), row, f) for row, f in zip(rows, flat)]

    def by_engine(field):  # a bar per engine; an engine without a value says why (skipped, not run...)
        return [(label, row, [(e, f[f"{e}_{field}"], e, f[f"{e}_status"] if f[f"{e}_status"] != "ok" else "n/a")
                              for e in ENGINES], None)
                for label, row, f in labelled if any(f[f"{e}_{field}"] for e in ENGINES)]

    speed = [(label, row, [("speedup", f["speedup"], _judgement(row, f), "n/a")], f["break_even_speedup"])
             for label, row, f in labelled if (f["speedup"] or 0) > 0]
    return "<section id=charts><h2>Charts</h2>" + "".join((
        _figure("rows", "Rows per second by engine (millions; longer is faster)", by_engine("rows_per_s"),
                lambda v: _sig(v / 1e6), log=False, legend=ENGINES,
                empty="No times to draw: no run here finished a benchmark."),
        _figure("cost", "Cost per million rows by engine (US dollars; shorter is cheaper)",
                by_engine("cost_per_mrows_usd"), _usd, log=False, legend=ENGINES,
                empty="No costs to draw: costs need a run's comparison.json (prices and host profile)."),
        _figure("speedup", "GPU speedup against the break-even line (log scale; black tick: break-even, dashed: "
                "same speed)", speed, _times, log=True, legend=("win", "loss", "noise"),
                empty="No speedups to draw: no row here has both a CPU and a GPU result."),
    )) + "</section>"


def _judgement(row: dict, flat: dict) -> str:
    """win: faster than break-even (or than the CPU, with no prices), outside the noise; loss: slower."""
    if row["speedup_within_noise"] is not False:
        return "noise"
    return "win" if flat["speedup"] >= (flat["break_even_speedup"] or 1.0) else "loss"


_LEGEND = {"cpu": "CPU", "gpu": "GPU", "win": "above break-even", "loss": "below break-even",
           "noise": "within noise, or noise unknown"}


def _figure(name: str, caption: str, groups: list, fmt, log: bool, legend, empty: str) -> str:
    """Horizontal bars, a group per row of results: (label, row, [(series, value, css class, no-value word)],
    marker), each bar's tooltip saying where its figure came from."""
    if not groups:
        return f"<figure id=chart-{name}><figcaption>{_e(caption)}</figcaption><p class=note>{_e(empty)}</p></figure>"
    label_w, plot_w, value_w, bar_h, gap, top = 330, 460, 90, 12, 8, 40
    values = [v for _, _, bars, m in groups for v in [*(b[1] for b in bars), m] if v and v > 0]
    if log:
        lo, hi = math.floor(math.log2(min(*values, 0.5))), math.ceil(math.log2(max(*values, 2.0)))
        x = lambda v: (math.log2(v) - lo) / (hi - lo) * plot_w
        ticks = [2.0 ** p for p in range(lo, hi + 1)]
    else:
        x = lambda v: v / max(values) * plot_w
        ticks = []
    height = top + sum(len(bars) * bar_h + gap for _, _, bars, _ in groups) + 4
    width = label_w + plot_w + value_w
    parts = []
    for i, series in enumerate(legend):
        parts += [_tag("rect", class_=series, x=label_w + i * 170, y=4, width=10, height=10),
                  _tag("text", _e(_LEGEND[series]), x=label_w + i * 170 + 14, y=13)]
    for tick in ticks:
        parts += [_tag("line", class_="even" if tick == 1 else "axis", x1=label_w + x(tick), x2=label_w + x(tick),
                       y1=top - 6, y2=height),
                  _tag("text", _e(f"{tick:g}×"), x=label_w + x(tick), y=top - 8, text_anchor="middle")]
    y = top
    for label, row, bars, marker in groups:
        where = _provenance(row["run"])
        short = label if len(label) <= 52 else label[:51] + "…"
        parts.append(_tag("text", _tag("title", _e(f"{label}: {where}")) + _e(short), x=label_w - 6,
                          y=y + bar_h * len(bars) / 2 + 4, text_anchor="end"))
        for series, value, cls, no_value in bars:
            shown = fmt(value) if value and value > 0 else no_value
            config = _configuration(row, [series] if series in ENGINES else ENGINES)
            tip = f"{label}, {series}: {shown}; {where}; {config}"
            w = max(x(value), 1.0) if value and value > 0 else 0
            parts += [_tag("rect", _tag("title", _e(tip)), class_=f"bar {cls}", x=label_w, y=y, width=w,
                           height=bar_h - 2),
                      _tag("text", _e(shown), x=label_w + w + 4, y=y + bar_h - 3)]
            y += bar_h
        if marker and marker > 0:
            parts.append(_tag("line", _tag("title", _e(f"break-even {_times(marker)}")), class_="marker",
                              x1=label_w + x(marker), x2=label_w + x(marker), y1=y - len(bars) * bar_h - 2, y2=y + 1))
        y += gap
    svg = _tag("svg", "".join(parts), class_="chart", id=f"svg-{name}", xmlns="http://www.w3.org/2000/svg",
               width=width, height=height, viewBox=f"0 0 {width} {height}", role="img", aria_label=caption)
    return f"<figure id=chart-{name}><figcaption>{_e(caption)}</figcaption>{svg}</figure>"


def _sparkline(gpu: dict, row: dict, small: bool = False) -> str:
    """A GPU's utilization over the run, 0 to 100%, as a small line."""
    points = [(t, u) for p in _list(gpu.get("timeline")) if isinstance(p, list) and len(p) == 2
              and (t := _num(p[0])) is not None and (u := _num(p[1])) is not None]
    if len(points) < 2:
        return ""
    w, h = (60, 16) if small else (120, 24)
    t0, t1 = min(t for t, _ in points), max(t for t, _ in points)
    coords = " ".join(f"{(t - t0) / ((t1 - t0) or 1) * w:.1f},{h - min(max(u, 0), 100) / 100 * h:.1f}"
                      for t, u in points)
    tip = (f"GPU {gpu.get('index', '?')} ({gpu.get('name') or 'unknown'}): utilization over {t1 - t0:.1f} s, "
           f"mean {_pct(gpu.get('util_mean_pct'))}, p95 {_pct(gpu.get('util_p95_pct'))}; {_provenance(row['run'])}")
    return _tag("svg", _tag("title", _e(tip)) + _tag("rect", width=w, height=h) + _tag("polyline", points=coords),
                class_="spark", xmlns="http://www.w3.org/2000/svg", width=w, height=h, viewBox=f"0 0 {w} {h}",
                role="img", aria_label="GPU utilization over the run")


def _tag(name: str, body: str | None = None, **attributes) -> str:
    """An SVG element, every attribute quoted and escaped (class_ is class, other underscores are dashes);
    `body` is markup, already escaped."""
    text = " ".join(f"{k.rstrip('_').replace('_', '-')}=\"{_e(round(v, 1) if isinstance(v, float) else v)}\""
                    for k, v in attributes.items())
    return f"<{name} {text}/>" if body is None else f"<{name} {text}>{body}</{name}>"


def _card(i: int, row: dict) -> str:
    """One workload, CPU and GPU side by side, with where every figure came from."""
    names = [*(e for e in ENGINES if e in row["engines"]), *sorted(set(row["engines"]) - set(ENGINES))]
    columns = [_engine_cells(name, row["engines"][name], row) for name in names]
    lines = [(label, [column[label] for column in columns]) for label in (columns[0] if columns else {})]
    table = ("<table class=side><tr><th></th>" + "".join(f"<th>{_e(n)}</th>" for n in names) + "</tr>"
             + "".join(f"<tr><th>{_e(label)}</th>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"
                       for label, cells in lines if any(cells)) + "</table>")
    speedup, even = _num(row.get("speedup")), _num(row.get("break_even_speedup"))
    verdict = _text(row.get("verdict"))
    variant = f" · {_e(row['variant'])}" if row["variant"] else ""
    parts = [
        f"<article class=card id=row-{i}><h3>{_e(row['workload'])} <small>{_e(_text(row.get('family')))} · "
        f"{_e(row['scale'])} rows{variant}</small> "
        + (f"<span class=\"badge {_e(verdict)}\">{_e(verdict)}</span>" if verdict else "") + "</h3>",
        f"<p class=note>{_e(_provenance(row['run']))} · source: {_e(row['source'])}</p>",
        table,
        "<p>" + (f"Speedup {_e(_times(speedup))} {_noise_badge(row)}, " if speedup else
                 "No speedup (the row lacks a finished CPU or GPU result), ")
        + (f"break-even {_e(_times(even))}. " if even else "break-even unknown (no prices for this run). ")
        + f"Outputs agree: {_e({True: 'yes', False: 'NO', None: 'not compared'}[row['outputs_agree']])}.</p>",
    ]
    reasons = _texts(row.get("reasons"))
    parts.append("<ul>" + "".join(f"<li>{_e(r)}</li>" for r in reasons) + "</ul>" if reasons else
                 "<p class=note>No verdict: " + ("comparison.json gives none." if row["source"] == COMPARISON_FILE
                                                 else "no comparison.json row for it.") + "</p>")
    if predicted := row.get("predicted"):
        on_cpu = "; ".join(f"{op}: {reason}" for op, reason in _fallbacks(predicted["fallbacks"]))
        share = _pct(100 * predicted["fraction"]) if predicted["fraction"] is not None else "?"
        parts.append(f"<p class=note>Predicted by the plugin's explain API (coverage.json, plan at "
                     f"{_e(predicted['scale'])} rows): {_e(share)} of operators on the GPU"
                     + (f"; on the CPU: {_e(on_cpu)}" if on_cpu else "") + ".</p>")
    parts += [_config_details(row, name) for name in names]
    return "".join(parts) + "</article>"


def _engine_cells(name: str, e: dict, row: dict) -> dict[str, str]:
    """One engine's column of a workload's details, as HTML cells by line; empty where there is no figure."""
    metrics = _dict(e.get("gpu_metrics"))
    gpus = [g for g in _list(metrics.get("gpus")) if isinstance(g, dict)]
    reason = f"<br><small>{_e(e['reason'])}</small>" if _text(e.get("reason")) else ""
    return {
        "status": _e(e.get("status")) + reason,
        "time: median (min to max, repeats)": _e(f"{_sig(e.get('median_s'))} s ({_sig(e.get('min_s'))} to "
                                                 f"{_sig(e.get('max_s'))} s, {_text_num(e.get('samples'))})")
        if _num(e.get("median_s")) is not None else "",
        "rows per second": _e(f"{_sig(e['rows_per_s'] / 1e6)} M ({_text_num(e.get('rows'))} rows)")
        if _num(e.get("rows_per_s")) else "",
        "instance": _e(f"{e['instance']} × {_text_num(e.get('nodes'))} at {_usd(e.get('usd_per_hour'), 4)}/h")
        if _text(e.get("instance")) else "",
        "cost per million rows": _e(_usd(e.get("cost_per_mrows_usd")))
        if _num(e.get("cost_per_mrows_usd")) is not None else "",
        "GPU utilization (mean, p95)": _gpu_metric(name, metrics, lambda m: f"{_pct(m.get('util_mean_pct'))}, "
                                                                            f"{_pct(m.get('util_p95_pct'))}")
        + "".join(_sparkline(g, row) for g in gpus),
        "GPU memory peak": _gpu_metric(name, metrics, lambda m: _gib(m.get("memory_peak_bytes"))),
        "GPU energy per million rows": _gpu_metric(name, metrics, lambda m: f"{_sig(m.get('energy_per_mrows_j'))} J"),
        "operators that fell back to the CPU": _fallback_list(e),
    }


def _gpu_metric(name: str, metrics: dict, show) -> str:
    """A GPU figure, or why it was not measured (not said for the CPU engine, where it is expected)."""
    if not metrics or (name == "cpu" and metrics.get("available") is not True):
        return ""
    if metrics.get("available") is False:
        return f"<span class=dim>not measured: {_e(metrics.get('reason') or 'no reason given')}</span>"
    return _e(show(metrics))


def _fallback_list(engine: dict) -> str:
    found = _fallbacks(engine.get("fallbacks"))
    fraction = _num(engine.get("fallback_fraction"))
    share = _e(f"{fraction:.0%} of the plan on the CPU") if fraction is not None else ""
    if not found:
        return share or ""
    return share + "<ul>" + "".join(f"<li><code>{_e(op)}</code>: {_e(reason)}</li>" for op, reason in found) + "</ul>"


def _config_details(row: dict, name: str) -> str:
    conf = {k: v for k, v in _dict(row["engines"][name].get("record_config")).items() if isinstance(v, dict)}
    summary = f"Configuration: {_configuration(row, [name])}"
    if not conf:
        return f"<p class=note>{_e(summary)}: not recorded.</p>"
    return (f"<details><summary>{_e(summary)} ({len(conf)} Spark properties, secrets redacted when recorded)</summary>"
            "<table><tr><th>key</th><th>value</th><th>from</th></tr>"
            + "".join(f"<tr><td><code>{_e(k)}</code></td><td><code>{_e(v.get('value'))}</code></td>"
                      f"<td>{_e(v.get('source'))}</td></tr>" for k, v in sorted(conf.items()))
            + "</table></details>")


def _runs_table(runs: list[dict]) -> str:
    head = ("run", "host", "profile", "started", "commit", "Spark", "RAPIDS plugin", "CPU", "GPUs", "records",
            "comparison.json", "rows shown")
    rows = "".join(
        "<tr>" + "".join(f"<td>{_e(v)}</td>" for v in (
            run["name"], run["hostname"] or "unknown", run["profile"] or "unknown", _date(run["started"]),
            _commit(run), run["spark"] or "?", run["rapids_plugin"] or "?",
            f"{run['cpu'] or '?'} ({_text_num(run['cores'])} cores)", ", ".join(run["gpus"]) or "none",
            run["records"], "yes" if run["comparison"] else "missing", run["rows_shown"])) + "</tr>" for run in runs)
    return ("<section id=runs><h2>Runs read</h2><p class=note>A run's rows are hidden where a newer run on the "
            "same host and host profile has the same workload, scale and variant.</p><table><tr>"
            + "".join(f"<th>{_e(h)}</th>" for h in head) + f"</tr>{rows}</table>"
            + ("" if runs else "<p>No run directories found.</p>") + "</section>")


# ---------------------------------------------------------------------------------------------- words and numbers


def _e(value) -> str:
    return "" if value is None else html.escape(str(value), quote=True)


def _label(row: dict) -> str:
    return (f"{row['workload']}{' [' + row['variant'] + ']' if row['variant'] else ''} @{row['scale']} · "
            f"{row['run']['hostname'] or 'unknown host'}")


def _provenance(run: dict) -> str:
    return (f"host {run['hostname'] or 'unknown'} (profile {run['profile'] or 'unknown'}), run {run['name']} started "
            f"{_date(run['started'])}, commit {_commit(run)}")


def _configuration(row: dict, engines) -> str:
    overrides = row["run"]["overrides"]
    return (f"host profile {row['run']['profile'] or 'unknown'}, engine {', '.join(engines)}"
            + (f", overrides {' '.join(overrides)}" if overrides else "")
            + (f", variant {row['variant']}" if row["variant"] else ""))


def _commit(run: dict) -> str:
    return (run["commit"] or "unknown")[:10] + (" (dirty)" if run["dirty"] else "")


def _date(stamp: str | None) -> str:
    try:
        return datetime.fromisoformat(stamp).astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    except (TypeError, ValueError):
        return stamp or "unknown"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _sha256(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


def _scale_rows(scale: str) -> float:
    try:
        return float(scale)
    except ValueError:
        return math.inf


def _num(value) -> float | int | None:
    """A finite number, or None for anything else (missing, null, text, booleans)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return value if ok else None


def _text(value) -> str | None:
    return value if isinstance(value, str) and value else None


def _texts(value) -> list[str]:
    return [v for v in _list(value) if isinstance(v, str)]


def _dict(value) -> dict:
    return value if isinstance(value, dict) else {}


def _list(value) -> list:
    return value if isinstance(value, list) else []


def _fallbacks(value) -> list[tuple[str, str]]:
    return [(str(f.get("op") or "?"), str(f.get("reason") or "no reason given")) for f in _list(value)
            if isinstance(f, dict)]


def _sig(value, digits: int = 3) -> str:
    """`digits` significant digits, written out (0.0000262, not 2.62e-05)."""
    if _num(value) is None:
        return "?"
    if value == 0:
        return "0"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(value))))
    return f"{value:,.{decimals}f}"


def _text_num(value) -> str:
    if _num(value) is None:
        return "?"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,}"


def _usd(value, digits: int = 3) -> str:
    return "$?" if _num(value) is None else "$" + _sig(value, digits)


def _times(value) -> str:
    return f"{value:.2f}×" if _num(value) is not None else "?"


def _pct(value) -> str:
    return f"{value:.0f}%" if _num(value) is not None else "?"


def _gib(value) -> str:
    return f"{value / 2**30:.2f} GiB" if _num(value) is not None else "?"
