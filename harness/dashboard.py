"""The published comparison site: an analysis in, one static directory out.

``index.html`` opens with the answer (each engine's time against CPU Spark, the cases it is the cheapest in,
the GPU side measured or predicted by QualX, the engines that could not run), then a workloads x engines
map of relative time (where each engine wins, at a glance), the sortable summary table (one row per case,
its details behind the workload's link), the scaling view (cost per million rows against rows, on log
axes, with the crossovers named), the charts (bars only for engines that ran; measured and predicted GPU
speedups against break-even) and the cases side by side. ``comparison.json`` is ``analysis.export`` and
``comparison.csv`` its rows, so the site, ``bench`` and ``compare`` write one schema; ``asv/`` is asv's own
history site.

Everything comes from ``analysis``: this module lays out what it computed and never computes a figure. The
markup lives in ``templates/`` (Jinja2, autoescaped); the page is self-contained and offline (inline CSS, JS
and SVG), and its content security policy lets only its own script run. The site is built next to its
destination and swapped in whole.
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
from datetime import datetime, timezone
from pathlib import Path

import jinja2

from . import analysis as analysis_, records
from .analysis import Analysis, Case, EngineResult

RUN_KINDS = ("runs", "smoke")  # where `bench` puts run directories under results/
TEMPLATES = Path(__file__).parent / "templates"
COLORS = 6  # engine colour classes in site.css


def find_runs(results_dir: Path) -> list[Path]:
    """Every run directory `bench` made under results/ (runs/ and smoke/), oldest first."""
    return sorted(path for kind in RUN_KINDS for path in (Path(results_dir) / kind).glob("*")
                  if path.is_dir() and not path.name.startswith("."))


# ---------------------------------------------------------------------------------------------- writing


def build(found: Analysis, out: Path, asv_results: Path | None = None, progress=print) -> Path:
    """Write the site of an analysis, with asv's history published from `asv_results` if it has any, to `out`,
    replacing what was there only once the new site is complete."""
    out = Path(out).absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.new-"))
    missing = list(found.missing)
    try:
        asv_published = _publish_asv(asv_results, work / "asv", missing)
        document = analysis_.export(found)
        document["missing"] = missing
        (work / "index.html").write_text(page(found, asv_published, missing))
        with open(work / "comparison.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=analysis_.CSV_FIELDS)
            writer.writeheader()
            writer.writerows(analysis_.csv_rows(document))
        (work / "comparison.json").write_text(json.dumps(document, indent=1, default=str) + "\n")
        os.chmod(work, 0o755)  # mkdtemp's directory is private; the site is for publishing
        _swap_in(work, out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    index = out / "index.html"
    note = f"; {_count(len(missing), 'thing')} missing, listed on the page" if missing else ""
    (progress or (lambda message: None))(
        f"comparison site written to {index} ({_count(len(found.cases), 'case')} from {_count(len(found.runs), 'run')}"
        f"{note}); open it in a browser, or serve it: python3 -m http.server -d {out}")
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


def page(found: Analysis, asv_published: bool, missing: list[str] | None = None) -> str:
    """index.html, rendered from templates/site.html with autoescaping: every value from the results is text."""
    css, js = (TEMPLATES / "site.css").read_text(), (TEMPLATES / "site.js").read_text()
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                                     undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    environment.filters.update(sig=_sig, usd=_usd, times=_times, pct=_pct, gib=_gib, date=_date, count=_count,
                               number=_text_num)
    unavailable = {s.label for s in found.engines if s.unavailable}
    engines = [s.label for s in found.engines if s.label not in unavailable and (s.ran or s.failed)]
    cases = [_case_view(i, case) for i, case in enumerate(found.cases)]
    hosts = {r.info.hostname for r in found.runs if r.info.hostname}
    colors = {label: f"engine-{i % COLORS}" for i, label in enumerate(engines)}
    return environment.get_template("site.html").render(
        css=css, js=js, csp=f"default-src 'none'; script-src '{_sha256(js)}'; style-src '{_sha256(css)}'; "
                            "img-src data:; base-uri 'none'; form-action 'none'",
        built=_now(), found=found, missing=missing if missing is not None else found.missing, cases=cases,
        engines=engines, colors=colors, hosts=hosts, asv_published=asv_published, answer=_answer(found),
        heat=_heat_map(cases, engines), scaling=[_scaling_chart(s, colors) for s in found.scaling],
        charts=_charts(cases, engines, colors), runs=[_run_view(run, found) for run in found.runs])


def _answer(found: Analysis) -> dict:
    """The opening section's figures, as the analysis computed them."""
    predicted = [c for c in found.cases if c.prediction and c.prediction.speedup]
    counts: dict[str, int] = {}
    for c in found.cases:
        counts[c.verdict.label] = counts.get(c.verdict.label, 0) + 1
    speedups = sorted(c.prediction.speedup for c in predicted)
    coverage = sorted(c.coverage["fraction"] for c in found.cases if c.coverage)
    evens = sorted({round(c.verdict.break_even, 2) for c in found.cases if c.verdict.break_even})
    reference = next((c.reference for c in found.cases if c.reference), None)
    return {
        "engines": [s for s in found.engines if not s.unavailable and s.role != "gpu" and (s.ran or s.failed)],
        "gpu_engines": [s for s in found.engines if not s.unavailable and s.role == "gpu" and (s.ran or s.failed)],
        "unavailable": [s for s in found.engines if s.unavailable], "reference": reference,
        "gpu_measured": found.gpu_measured, "predicted": len(predicted),
        "source": predicted[0].prediction.source if predicted else None,
        "predicted_median": speedups[len(speedups) // 2] if speedups else None,
        "predicted_range": (speedups[0], speedups[-1]) if speedups else None,
        "coverage_median": coverage[len(coverage) // 2] if coverage else None, "coverage_cases": len(coverage),
        "break_even": evens, "verdicts": sorted(counts.items()), "accuracy": found.accuracy,
    }


def _case_view(i: int, case: Case) -> dict:
    """What the page shows of a case: the model's figures, with where each came from."""
    return {
        "i": i, "case": case, "by_label": {e.label: e for e in case.engines}, "gpu": case.gpu,
        "judgement": case.verdict.speedup.judgement(case.verdict.break_even) if case.verdict.speedup else "noise",
        "newest": case.newest,
        "label": f"{case.label} @{case.scale} · {', '.join(case.hosts)}",
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


def _run_view(run, found: Analysis) -> dict:
    info = run.info
    return {"info": info, "records": len(run.records), "shown": found.shown_per_run.get(info.name, 0),
            "gpus": ", ".join(g.get("name") or "?" for g in info.gpus) or "none", "commit": _commit(info)}


_HEAT = ((0.5, "w3"), (0.8, "w2"), (0.95, "w1"), (1.05, "even"), (1.25, "l1"), (2.0, "l2"))


def _heat_map(cases: list[dict], engines: list[str]) -> dict:
    """Workloads x engines: each engine's median over the reference's (and QualX's predicted GPU time, as
    1 / its speedup), in colour classes from much faster (w3) to much slower (l3)."""
    rows = []
    for view in cases:
        case = view["case"]
        reference = case.reference_result
        cells = []
        for label in engines:
            e = view["by_label"].get(label)
            if e is None or reference is None or not reference.record.ok:
                cells.append({"text": "", "cls": "none", "tip": f"{label}: not run"})
            elif not e.record.ok:
                word = "not defined" if e.record.status == "undefined" else e.record.status
                cells.append({"text": "·", "cls": "none", "tip": f"{label}: {word}"})
            else:
                ratio = e.record.median_s / reference.record.median_s
                cells.append({"text": f"{ratio:.2f}", "cls": _heat_class(ratio) + (" differ" if e.agrees is False else ""),
                              "tip": f"{label}: {e.record.median_s:.3g} s, {ratio:.2f}x {reference.label}'s time"
                                     + (" (its output DIFFERS)" if e.agrees is False else "")})
        p = case.prediction
        if p and p.speedup:
            cells.append({"text": f"{1 / p.speedup:.2f}", "cls": _heat_class(1 / p.speedup) + " predicted",
                          "tip": f"GPU predicted by QualX: {p.speedup:.2f}x faster than {case.reference}"})
        else:
            cells.append({"text": "", "cls": "none", "tip": f"QualX: {p.reason}" if p else "QualX: not qualified"})
        rows.append({"view": view, "cells": cells})
    return {"columns": [*engines, "GPU (QualX)"], "rows": rows}


def _heat_class(ratio: float) -> str:
    return next((cls for limit, cls in _HEAT if ratio < limit), "l3")


def _charts(cases: list[dict], engines: list[str], colors: dict[str, str]) -> list[dict]:
    def by_engine(figure):
        groups = []
        for view in cases:
            bars = [(label, getattr(view["by_label"][label].record, figure), colors[label])
                    for label in engines if label in view["by_label"] and view["by_label"][label].record.ok]
            if bars:
                groups.append((view["label"], view, bars, None))
        return groups

    speed = []
    for view in cases:
        case, bars = view["case"], []
        measured = case.verdict.speedup if case.verdict.basis == "measured" else None
        if measured:
            bars.append((f"measured over {case.verdict.compared_with}", measured.value, view["judgement"]))
        if case.prediction and case.prediction.speedup:
            bars.append((f"QualX over {case.reference}", case.prediction.speedup, "predicted"))
        if bars:
            speed.append((view["label"], view, bars, case.verdict.break_even))
    legend = [(colors[label], label) for label in engines]
    return [
        _figure("rows", "Rows per second by engine (millions; longer is faster; engines that did not run have no bar)",
                by_engine("rows_per_s"), lambda v: _sig(v / 1e6), False, legend,
                "No times to draw: no run here finished a benchmark."),
        _figure("cost", "Cost per million rows by engine (US dollars; shorter is cheaper)", by_engine("cost_per_mrows_usd"),
                _usd, False, legend, "No costs to draw: costs need prices (the host profile's instances in conf/prices.conf)."),
        _figure("speedup", "GPU speedup, measured over the cheapest agreeing CPU engine and predicted by QualX over CPU "
                "Spark (log scale; black tick: break-even, dashed: same speed)", speed, _times, True,
                [("win", "measured, above break-even"), ("loss", "measured, below"), ("noise", "measured, within noise"),
                 ("predicted", "predicted by QualX")],
                "No GPU speedups to draw: no GPU ran and QualX predicted none (`python -m harness qualify RUN_DIR`)."),
    ]


def _figure(name: str, caption: str, groups: list, fmt, log: bool, legend: list, empty: str) -> dict:
    """Horizontal bars, a group per case: (label, case view, [(series, value, css class)], marker); geometry
    only, the markup is the template's."""
    label_w, plot_w, value_w, bar_h, gap, top = 330, 460, 90, 12, 8, 40
    values = [v for _, _, bars, m in groups for v in [*(b[1] for b in bars), m] if v and v > 0]
    if not groups or not values:
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
        for series, value, cls in bars:
            shown = fmt(value) if value and value > 0 else "?"
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


def _scaling_chart(view, colors: dict[str, str]) -> dict:
    """Cost per million rows against rows, both on log axes, a line per engine; geometry only."""
    w, h, left, bottom, top, right = 460, 230, 82, 30, 12, 110
    points = [(p.rows, p.cost_per_mrows_usd) for e in view.engines for p in e.points if p.rows and p.cost_per_mrows_usd]
    chart = {"view": view, "w": w, "h": h}
    if len(points) < 2:
        chart["empty"] = "no costs to draw (prices missing, or fewer than two points)"
        return chart
    xs, ys = [math.log10(r) for r, _ in points], [math.log10(c) for _, c in points]
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    y0, y1 = math.floor(min(ys)), math.ceil(max(ys)) if math.ceil(max(ys)) > math.floor(min(ys)) else math.floor(min(ys)) + 1
    px = lambda rows: left + (math.log10(rows) - x0) / (x1 - x0) * (w - left - right)
    py = lambda usd: top + (y1 - math.log10(usd)) / (y1 - y0) * (h - top - bottom)
    lines = []
    for i, engine in enumerate(view.engines):
        drawn = [(round(px(p.rows), 1), round(py(p.cost_per_mrows_usd), 1), p) for p in engine.points
                 if p.rows and p.cost_per_mrows_usd]
        if drawn:
            lines.append({"label": engine.label, "cls": colors.get(engine.label, f"engine-{i % COLORS}"),
                          "points": " ".join(f"{x},{y}" for x, y, _ in drawn),
                          "dots": [{"x": x, "y": y, "tip": f"{engine.label} at {p.scale}: {_usd(p.cost_per_mrows_usd)} "
                                    f"per million rows, {_sig(p.median_s)} s"} for x, y, p in drawn],
                          "legend_y": top + 14 * i + 8, "exponent": engine.exponent})
    rows = sorted({p.rows for e in view.engines for p in e.points if p.rows})
    chart.update(lines=lines, left=left, right=w - right, top=top, bottom=h - bottom,
                 xticks=[{"x": round(px(r), 1), "text": f"{r:.0e}".replace("e+0", "e")} for r in rows],
                 yticks=[{"y": round(py(10 ** e), 1), "text": _usd(10 ** e)} for e in range(y0, y1 + 1)])
    return chart


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
