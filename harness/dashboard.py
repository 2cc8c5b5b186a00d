"""The published comparison site: run directories in, one static directory out.

``index.html`` puts every engine of every case side by side (time, rows/s, cost per million rows, speedup
against the cheapest CPU engine and the break-even line, GPU activity over the run, GPU memory, energy, the
operators left unaccelerated, whether outputs agree, the verdict and its reasons) under a sortable summary
table and inline SVG charts. ``comparison.csv`` and ``comparison.json`` hold the same figures for other tools
(one CSV row per case and engine), and ``asv/`` is asv's own history site.

Everything comes from the result model (``results``): the site formats what the model computed and never
computes a figure itself. Runs from several hosts are shown side by side; cases that pair runs of two
hosts come from ``compare`` (saved under ``results/comparisons/``). Where one host and profile ran the same
case twice, the newer finished case is shown: an unfinished case never hides a finished one. The markup
lives in ``templates/`` (Jinja2, autoescaped); the page is self-contained and offline (inline CSS, JS and
SVG, nothing fetched), and its content security policy lets only its own script run. The site is built
next to its destination and swapped in whole.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import jinja2

from . import records, results
from .results import Case, EngineResult, Run

RUN_KINDS = ("runs", "smoke")  # where `bench` puts run directories under results/
COMPARISONS = "comparisons"  # where `compare` saves cases that pair runs of several hosts
PAIRING_FILE = "runs.json"
TEMPLATES = Path(__file__).parent / "templates"
FIELDS = (  # the exported table's columns: one row per case and engine
    "workload", "family", "scale", "variant", "hosts", "verdict", "verdict_engine", "speedup", "within_noise",
    "break_even_speedup", "compared_with", "outputs_agree", "engine", "role", "backend", "run", "hostname",
    "host_profile", "started", "commit", "status", "reason", "samples", "median_s", "min_s", "max_s", "rows",
    "rows_per_s", "instance", "nodes", "usd_per_hour", "cost_per_mrows_usd", "agrees", "gpu_busy_pct",
    "gpu_busy_source", "gpu_memory_peak_bytes", "energy_per_mrows_j", "fallback_fraction", "not_accelerated",
)


@dataclass
class Site:
    runs: list[Run]
    cases: list[Case]  # shown, newest first per key
    missing: list[str]
    shown_per_run: dict[str, int]


# ---------------------------------------------------------------------------------------------- reading


def find_runs(results_dir: Path) -> list[Path]:
    """Every run directory `bench` made under results/ (runs/ and smoke/), oldest first."""
    return sorted(path for kind in RUN_KINDS for path in (Path(results_dir) / kind).glob("*")
                  if path.is_dir() and not path.name.startswith("."))


def find_comparisons(results_dir: Path) -> list[Path]:
    return sorted(p for p in (Path(results_dir) / COMPARISONS).glob(f"*/{PAIRING_FILE}"))


def collect(run_dirs, comparisons=()) -> Site:
    """The runs read through the model, each run's own cases and the saved cross-host ones, newest shown."""
    runs = [results.load(d) for d in run_dirs]
    missing = [f"{run.info.path}: {m}" for run in runs for m in run.missing]
    candidates = [(case, [run]) for run in runs for case in results.cases([run])]
    for pairing in comparisons:
        paired, problem = _paired_runs(Path(pairing))
        if problem:
            missing.append(f"{pairing.parent}: {problem}")
            continue
        candidates += [(case, paired) for case in results.cases(paired)  # what only one run has is its own case
                       if len({e.run.name for e in case.engines}) > 1]
    newest: dict[tuple, tuple[Case, str]] = {}
    for case, source in sorted(candidates, key=lambda c: max(r.info.started or "" for r in c[1])):
        hosts = tuple(sorted(f"{r.info.hostname}/{r.info.profile}" for r in source))
        key = (hosts, case.key)
        kept = newest.get(key)
        if kept is None or case.finished or not kept[0].finished:  # never let an unfinished case hide a finished one
            newest[key] = (case, source[0].info.name)
    shown = sorted((c for c, _ in newest.values()), key=lambda c: (c.workload, results.scale_sort(c.scale), c.variant,
                                                                     c.hosts))
    per_run = {run.info.name: sum(1 for c in shown if any(e.run.name == run.info.name for e in c.engines)) for run in runs}
    return Site(runs, shown, missing, per_run)


def _paired_runs(pairing: Path) -> tuple[list[Run], str | None]:
    data = records.read_json(pairing)
    paths = data.get("runs") if isinstance(data, dict) else None
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        return [], f"{PAIRING_FILE} does not list the run directories it pairs"
    gone = [p for p in paths if not Path(p).is_dir()]
    if gone:
        return [], f"the paired run directories {', '.join(gone)} are gone"
    return [results.load(Path(p)) for p in paths], None


def table(site: Site) -> list[dict]:
    """The exported rows: one per case and engine, with the case's verdict beside each engine's figures."""
    rows = []
    for case in site.cases:
        for e in case.engines:
            r = e.record
            busy, source = r.gpu_busy_pct
            rows.append({
                "workload": case.workload, "family": case.family, "scale": case.scale, "variant": case.variant,
                "hosts": ", ".join(case.hosts), "verdict": case.verdict.verdict, "verdict_engine": case.verdict.engine,
                "speedup": case.verdict.speedup, "within_noise": case.verdict.within_noise,
                "break_even_speedup": case.verdict.break_even, "compared_with": case.verdict.compared_with,
                "outputs_agree": case.outputs_agree, "engine": e.label, "role": e.role, "backend": r.backend,
                "run": e.run.name, "hostname": e.run.hostname, "host_profile": r.host_profile,
                "started": e.run.started, "commit": e.run.commit, "status": r.status, "reason": r.reason,
                "samples": len(r.samples_s), "median_s": r.median_s, "min_s": r.min_s, "max_s": r.max_s,
                "rows": r.rows, "rows_per_s": r.rows_per_s, "instance": r.price.instance, "nodes": r.price.nodes,
                "usd_per_hour": r.price.usd_per_hour, "cost_per_mrows_usd": r.cost_per_mrows_usd, "agrees": e.agrees,
                "gpu_busy_pct": busy, "gpu_busy_source": source if busy is not None else None,
                "gpu_memory_peak_bytes": r.gpu_metrics.get("memory_peak_bytes"),
                "energy_per_mrows_j": r.gpu_metrics.get("energy_per_mrows_j"),
                "fallback_fraction": r.fallback_fraction, "not_accelerated": ", ".join(dict.fromkeys(r.plan.get("other") or [])),
            })
    return rows


# ---------------------------------------------------------------------------------------------- writing


def build(run_dirs, out: Path, asv_results: Path | None = None, comparisons=(), progress=print) -> Path:
    """Write the site for `run_dirs` (and the saved `comparisons`), with asv's history published from
    `asv_results` if it has any, to `out`, replacing what was there only once the new site is complete."""
    out = Path(out).absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    site = collect(run_dirs, comparisons)
    work = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.new-"))
    try:
        asv_published = _publish_asv(asv_results, work / "asv", site.missing)
        flat = table(site)
        (work / "index.html").write_text(page(site, asv_published))
        with open(work / "comparison.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=FIELDS)
            writer.writeheader()
            writer.writerows(flat)
        export = {"schema": results.SCHEMA, "generated": _now(), "missing": site.missing, "rows": flat,
                  "runs": [run.info.__dict__ for run in site.runs]}
        (work / "comparison.json").write_text(json.dumps(export, indent=1, default=str) + "\n")
        os.chmod(work, 0o755)  # mkdtemp's directory is private; the site is for publishing
        _swap_in(work, out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    index = out / "index.html"
    missing = f"; {_count(len(site.missing), 'thing')} missing, listed on the page" if site.missing else ""
    (progress or (lambda message: None))(
        f"comparison site written to {index} ({_count(len(site.cases), 'case')} from {_count(len(site.runs), 'run')}"
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


def page(site: Site, asv_published: bool) -> str:
    """index.html, rendered from templates/site.html with autoescaping: every value from the results is text."""
    css, js = (TEMPLATES / "site.css").read_text(), (TEMPLATES / "site.js").read_text()
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                                     undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    environment.filters.update(sig=_sig, usd=_usd, times=_times, pct=_pct, gib=_gib, date=_date, count=_count,
                               number=_text_num)
    engines = list(dict.fromkeys(e.label for c in site.cases for e in sorted(c.engines, key=results.role_order)))
    cases = [_case_view(i, case) for i, case in enumerate(site.cases)]
    hosts = {r.info.hostname for r in site.runs if r.info.hostname}
    return environment.get_template("site.html").render(
        css=css, js=js, csp=f"default-src 'none'; script-src '{_sha256(js)}'; style-src '{_sha256(css)}'; "
                            "img-src data:; base-uri 'none'; form-action 'none'",
        built=_now(), site=site, cases=cases, engines=engines, hosts=hosts, asv_published=asv_published,
        charts=_charts(cases, engines), runs=[_run_view(run, site) for run in site.runs])


def _case_view(i: int, case: Case) -> dict:
    """What the page shows of a case: the model's figures, with where each came from."""
    gpu = case.engine(case.verdict.engine) if case.verdict.verdict == "share" else None
    gpu = gpu or next((e for e in case.engines if e.role == "gpu" and e.record.ok), None)
    newest = max((e.run for e in case.engines), key=lambda run: run.started or "")
    return {
        "i": i, "case": case, "by_label": {e.label: e for e in case.engines}, "gpu": gpu,
        "judgement": _judgement(case), "newest": newest,
        "label": f"{case.workload}{' [' + case.variant + ']' if case.variant else ''} @{case.scale} · {', '.join(case.hosts)}",
        "engines": [_engine_view(e, case) for e in case.engines],
    }


def _engine_view(e: EngineResult, case: Case) -> dict:
    r = e.record
    busy, source = r.gpu_busy_pct
    gpus = [g for g in r.gpu_metrics.get("gpus") or [] if isinstance(g, dict)]
    return {"e": e, "r": r, "busy": busy, "busy_source": source,
            "sparklines": [s for g in gpus if (s := _sparkline(g))],
            "provenance": _provenance(e.run), "is_reference": e.label == case.reference,
            "config": sorted((k, v) for k, v in r.config.items() if isinstance(v, dict))}


def _run_view(run: Run, site: Site) -> dict:
    info = run.info
    return {"info": info, "records": len(run.records), "shown": site.shown_per_run.get(info.name, 0),
            "gpus": ", ".join(g.get("name") or "?" for g in info.gpus) or "none", "commit": _commit(info)}


def _judgement(case: Case) -> str:
    """win: beats break-even (or the CPU, with no prices) outside the noise; loss: slower; noise otherwise."""
    v = case.verdict
    if v.speedup is None or v.within_noise is not False:
        return "noise"
    return "win" if v.speedup >= (v.break_even or 1.0) else "loss"


def _charts(cases: list[dict], engines: list[str]) -> list[dict]:
    def by_engine(figure, fmt):
        groups = []
        for view in cases:
            bars = [(label, getattr(view["by_label"][label].record, figure), f"engine-{engines.index(label) % 6}",
                     view["by_label"][label].record.status) for label in engines if label in view["by_label"]]
            if any(value for _, value, _, _ in bars):
                groups.append((view["label"], view, bars, None))
        return groups

    speed = [(v["label"], v, [("speedup", v["case"].verdict.speedup, v["judgement"], "n/a")], v["case"].verdict.break_even)
             for v in cases if (v["case"].verdict.speedup or 0) > 0]
    legend = [(f"engine-{i % 6}", label) for i, label in enumerate(engines)]
    return [
        _figure("rows", "Rows per second by engine (millions; longer is faster)", by_engine("rows_per_s", None),
                lambda v: _sig(v / 1e6), False, legend, "No times to draw: no run here finished a benchmark."),
        _figure("cost", "Cost per million rows by engine (US dollars; shorter is cheaper)",
                by_engine("cost_per_mrows_usd", None), _usd, False, legend,
                "No costs to draw: costs need prices (the host profile's instances in conf/prices.conf)."),
        _figure("speedup", "Best GPU engine's speedup over the cheapest CPU engine that agreed (log scale; black "
                "tick: break-even, dashed: same speed)", speed, _times, True,
                [("win", "above break-even"), ("loss", "below break-even"), ("noise", "within noise, or noise unknown")],
                "No speedups to draw: no case here has both a CPU and a GPU result."),
    ]


def _figure(name: str, caption: str, groups: list, fmt, log: bool, legend: list, empty: str) -> dict:
    """Horizontal bars, a group per case: (label, case view, [(series, value, css class, no-value word)],
    marker); geometry only, the markup is the template's."""
    label_w, plot_w, value_w, bar_h, gap, top = 330, 460, 90, 12, 8, 40
    values = [v for _, _, bars, m in groups for v in [*(b[1] for b in bars), m] if v and v > 0]
    if not groups:
        return {"name": name, "caption": caption, "empty": empty}
    if log:
        lo, hi = math.floor(math.log2(min(*values, 0.5))), math.ceil(math.log2(max(*values, 2.0)))
        x = lambda v: (math.log2(v) - lo) / (hi - lo) * plot_w
        ticks = [2.0 ** p for p in range(lo, hi + 1)]
    else:
        x = lambda v: v / max(values) * plot_w
        ticks = []
    height = top + sum(len(bars) * bar_h + gap for _, _, bars, _ in groups) + 4
    drawn, y = [], top
    for label, view, bars, marker in groups:
        group = {"label": label, "short": label if len(label) <= 52 else label[:51] + "…",
                 "tip": f"{label}: {_provenance(view['newest'])}", "text_y": y + bar_h * len(bars) / 2 + 4, "bars": []}
        for series, value, cls, no_value in bars:
            shown = fmt(value) if value and value > 0 else no_value
            width = max(x(value), 1.0) if value and value > 0 else 0
            group["bars"].append({"cls": cls, "y": y, "width": round(width, 1), "text": shown,
                                  "tip": f"{label}, {series}: {shown}"})
            y += bar_h
        if marker and marker > 0:
            group["marker"] = {"x": round(label_w + x(marker), 1), "y1": y - len(bars) * bar_h - 2, "y2": y + 1,
                               "tip": f"break-even {_times(marker)}"}
        drawn.append(group)
        y += gap
    return {"name": name, "caption": caption, "legend": legend, "label_w": label_w, "width": label_w + plot_w + value_w,
            "height": height, "bar_h": bar_h, "top": top, "groups": drawn,
            "ticks": [{"x": round(label_w + x(t), 1), "text": f"{t:g}×", "even": t == 1} for t in ticks]}


def _sparkline(gpu: dict) -> dict | None:
    """A GPU's utilization over the run, 0 to 100%, as a small line's points."""
    points = [(t, u) for p in gpu.get("timeline") or [] if isinstance(p, list) and len(p) == 2
              and (t := _num(p[0])) is not None and (u := _num(p[1])) is not None]
    if len(points) < 2:
        return None
    w, h = 120, 24
    t0, t1 = min(t for t, _ in points), max(t for t, _ in points)
    coords = " ".join(f"{(t - t0) / ((t1 - t0) or 1) * w:.1f},{h - min(max(u, 0), 100) / 100 * h:.1f}" for t, u in points)
    return {"points": coords, "w": w, "h": h,
            "tip": f"GPU {gpu.get('index', '?')} ({gpu.get('name') or 'unknown'}): utilization over {t1 - t0:.1f} s, "
                   f"mean {_pct(gpu.get('util_mean_pct'))}, p95 {_pct(gpu.get('util_p95_pct'))}"}


# ---------------------------------------------------------------------------------------------- words and numbers


def _provenance(run) -> str:
    return (f"host {run.hostname or 'unknown'} (profile {run.profile or 'unknown'}), run {run.name} started "
            f"{_date(run.started)}, commit {_commit(run)}")


def _commit(run) -> str:
    return (run.commit or "unknown")[:10] + (" (dirty)" if run.dirty else "")


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


def _num(value) -> float | int | None:
    """A finite number, or None for anything else (missing, null, text, booleans)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return value if ok else None


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
