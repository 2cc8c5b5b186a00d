"""``python -m harness``: run the benchmarks through asv, summarize and compare runs, inspect configuration."""

from __future__ import annotations

import argparse
import os
import dataclasses
import shutil
import signal
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from . import (REPO_ROOT, EngineUnavailable, HarnessError, analysis, bench, browser, bundle, cluster, coverage, dashboard, data,
               jars, keys, presets, qualx, records, rehearsal, report, results, versions, workloads)
from .backends import Engine
from .config import RESULTS_DIR, RunSettings, engines, merge, redact, scale_rows, warnings
from .standalone import StandaloneCluster

SMOKE_SCALE = "1e4"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("bench", help="run the asv benchmarks, then summarize the run")
    run.add_argument("--smoke", action="store_true",
                     help=f"every benchmark once at scale {SMOKE_SCALE}, not saved to asv's history (asv --dry-run)")
    _run_options(run)
    run.add_argument("--preset", metavar="NAME", help="a named run in conf/presets/, e.g. gpu-check (a new GPU host "
                     "in about five minutes); --scales and --workloads narrow it")
    run.add_argument("--budget", type=float, metavar="SECONDS", help="stop cleanly once this much wall time is spent "
                     "(30 s of it kept for the summary and archive) and keep what finished: for a host lent briefly")
    run.add_argument("--archive", action="store_true", help="also write the run directory as one .tar.gz beside it, "
                     "to take the results off the host (implied by --preset)")
    run.add_argument("--offline", action="store_true", help="fetch nothing: use only the jars and tools already cached, "
                     "and say which engines and figures go without")
    run.add_argument("--sweep", action="store_true", help="add the configuration sweep in conf/sweep.conf")
    run.add_argument("--bench", "-b", metavar="REGEX", help="only benchmarks whose name matches (asv --bench)")
    run.add_argument("--with-suite-benchmarks", action="store_true",
                     help="with --workloads, also run the suite's own benchmarks (data generation, sampler, fixed cost)")
    run.add_argument("--no-connect", action="store_true",
                     help="a classic Spark session (a JVM) per benchmark process instead of one Spark Connect server per engine")
    run.add_argument("--remote", metavar="sc://HOST:PORT", help="benchmark this Spark Connect endpoint (with one --engines "
                     "naming its configuration) instead of starting a server")
    run.add_argument("--remote-ui", metavar="URL", help="the endpoint's monitoring UI, for metrics (default: port 4040 of its host)")
    run.add_argument("--dask-scheduler", metavar="tcp://HOST:PORT", help="benchmark the Dask engines on a cluster a team "
                     "already runs (tls:// with Dask's own TLS configuration) instead of starting one; its workers must "
                     "read the datasets (--data-dir a shared URI)")
    run.add_argument("--dask-scheduler-file", metavar="FILE", help="the same, found by the scheduler's file")
    run.add_argument("asv_args", nargs=argparse.REMAINDER, help="after --: passed to `asv run` unchanged")

    show = commands.add_parser("summary", help="print the summary of a run (the latest by default), or of several "
                               "merged (runs of workload subsets or scales, say: results/runs/*)")
    show.add_argument("run_dirs", nargs="*", type=Path)
    show.add_argument("--results-dir", type=Path, default=RESULTS_DIR)

    pair = commands.add_parser("compare", help="cases from runs of several hosts (a CPU cluster's and a GPU cluster's, "
                               "say), each priced as its own host profile; saved for the site")
    pair.add_argument("run_dirs", nargs="+", type=Path)
    pair.add_argument("--results", type=Path, default=REPO_ROOT / "results", help="the results tree (default: results)")
    pair.add_argument("--name", help="the comparison's directory name under results/comparisons/")

    conf = commands.add_parser("config", help="show the merged configuration and where each value comes from")
    conf.add_argument("--engine", default="cpu", help="an engine in conf/engines/, e.g. gpu or comet")
    _run_options(conf)

    gen = commands.add_parser("generate", help="generate (or check) the cached datasets")
    gen.add_argument("--tables", default=",".join(data.TABLES), help="comma-separated tables (default: all)")
    _run_options(gen)

    cover = commands.add_parser("coverage", help="which operators the RAPIDS plugin would run on the GPU (no GPU needed)")
    cover.add_argument("--scale", default=SMOKE_SCALE, help=f"data scale to build the plans on (default {SMOKE_SCALE})")
    cover.add_argument("--engine", default="gpu", help="the GPU engine whose configuration to explain (default gpu)")
    cover.add_argument("--out", type=Path, help="where to write coverage.json (default results/coverage/<time>-<host>.json)")
    _run_options(cover)

    pack = commands.add_parser("bundle", help="build an offline bundle (source, wheels, jars, checksums)")
    bundle.add_arguments(pack)
    rehearse = commands.add_parser("rehearse", help="the calls that install and run the suite on a GPU host lent "
                                   "through a narrow channel, rehearsed against a local directory, limits enforced")
    rehearsal.add_arguments(rehearse)

    site = commands.add_parser("site", help="write the comparison site (index.html, CSV, JSON, asv's history) "
                                            "from the results")
    site.add_argument("run_dirs", nargs="*", type=Path, help="only these run directories (default: every run "
                      "under --results, in runs/ and smoke/, and the saved comparisons)")
    site.add_argument("--results", type=Path, default=REPO_ROOT / "results", help="the results tree (default: results)")
    site.add_argument("--out", type=Path, help="where to write the site (default: <results>/site)")

    loopback = commands.add_parser("standalone", help="a Spark standalone cluster on 127.0.0.1 until interrupted "
                                   "(to try the cluster path on one machine)")
    loopback.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    loopback.add_argument("--cores", type=int, default=1, help="cores each worker offers (default 1)")
    loopback.add_argument("--memory", default="2g", help="memory each worker offers (default 2g)")

    doctor = commands.add_parser("doctor", help="what this host has, and which engines can run here")
    doctor.add_argument("--host", help="host overlay in conf/hosts/ (default: local)")
    commands.add_parser("workloads", help="list the registered workloads")
    commands.add_parser("fetch-jars", help="download the pinned RAPIDS Accelerator and Comet jars into the cache")
    commands.add_parser("fetch-tools", help="set up NVIDIA's qualification tools (QualX) in an environment of their own, "
                                            "once per machine (about 2 GB)")
    qualify = commands.add_parser("qualify", help="QualX's predicted GPU speedup for a finished run's CPU Spark queries, "
                                  "from its event logs, offline (written to qualification.json; the summary and site "
                                  "are rewritten)")
    qualify.add_argument("run_dir", type=Path)
    commands.add_parser("fetch-browser", help="install Chromium and chromedriver for the browser tests, if missing "
                                              "(apt-get, as root)")
    catalogues = commands.add_parser("keys", help="rewrite conf/keys/<name>-<version>.tsv from the installed Spark's "
                                     "and the jars' bytecode")
    catalogues.add_argument("names", nargs="*", default=list(keys.CATALOGUES), help=", ".join(keys.CATALOGUES))

    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except HarnessError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _run_options(parser) -> None:
    parser.add_argument("--host", help="host overlay in conf/hosts/ (default: local)")
    parser.add_argument("--engines", help="comma-separated engines from conf/engines/ (default: every one that is not opt-in)")
    parser.add_argument("--scales", help="comma-separated row counts, e.g. 1e6,1e7 (default: 1e6,1e7); as-is for your "
                        "own datasets")
    for option, (key, metavar, text) in cluster.LAYOUT_OPTIONS.items():
        parser.add_argument(f"--{option.replace('_', '-')}", metavar=metavar, help=f"{text}: sets {key}")
    parser.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE",
                        help="override a property; repeatable; wins over every file")
    parser.add_argument("--data-dir", help="dataset cache: a directory or a URI Spark reads "
                        "(file://, hdfs://, s3a://); default ~/.cache/prepbench/data")
    parser.add_argument("--workloads", help="comma-separated names or glob patterns, e.g. 'join_*,ml_pipeline'")
    parser.add_argument("--results-dir", type=Path, help="where run directories go (default: results/runs)")


def _settings(args, default_scales=None, **changes) -> RunSettings:
    """Environment first (PREPBENCH_*), then command-line options on top."""
    base = RunSettings.from_env()
    scales = args.scales or default_scales
    split = lambda text: tuple(s.strip() for s in text.split(",") if s.strip())
    return RunSettings(**{**base.__dict__,
        "host": args.host or base.host,
        "engines": split(args.engines) if getattr(args, "engines", None) else base.engines,
        "scales": split(scales) if scales else base.scales,
        "overrides": (*base.overrides, *_layout_overrides(args), *args.conf),
        "workloads": split(args.workloads) if getattr(args, "workloads", None) else base.workloads,
        "data_dir": data.as_location(args.data_dir) if getattr(args, "data_dir", None) else base.data_dir,
        "results_dir": args.results_dir or base.results_dir, **changes})


def _layout_overrides(args) -> list[str]:
    """--master, --executors, ...: command-line overrides of their Spark properties."""
    return [f"{key}={getattr(args, option)}" for option, (key, _, _) in cluster.LAYOUT_OPTIONS.items()
            if getattr(args, option) is not None]


def cmd_bench(args) -> int:
    if args.smoke and not args.results_dir:
        args.results_dir = REPO_ROOT / "results" / "smoke"
    changes = {"sweep": args.sweep or RunSettings.from_env().sweep, "smoke": args.smoke}
    if args.no_connect:
        changes["session"] = "classic"
    if args.remote:
        changes.update(remote=args.remote, remote_ui=args.remote_ui or "")
    if args.dask_scheduler or args.dask_scheduler_file:
        if args.dask_scheduler and args.dask_scheduler_file:
            raise HarnessError("give --dask-scheduler or --dask-scheduler-file, not both")
        changes["dask_scheduler"] = args.dask_scheduler or str(Path(args.dask_scheduler_file).expanduser().resolve())
    settings = _settings(args, default_scales=SMOKE_SCALE if args.smoke else None, **changes)
    if args.budget is not None and args.budget < 60:
        raise HarnessError(f"--budget {args.budget:g}: give the run at least 60 s (30 of them are kept for its end)")
    preset = None
    if args.preset:
        if args.smoke or args.sweep:
            raise HarnessError("--preset is a run of its own: leave out --smoke and --sweep")
        split = lambda text: tuple(s.strip() for s in text.split(",") if s.strip())
        preset = presets.load(args.preset).narrowed(args.scales and split(args.scales),
                                                    args.workloads and split(args.workloads))
    for engine in settings.engines:  # an unreachable master fails here, before asv starts a process per benchmark
        cluster.check_master(Engine.of(engine, settings).conf)
    return bench.run(settings, args.smoke, args.bench, args.asv_args, args.with_suite_benchmarks, preset,
                     archive=args.archive or preset is not None, offline=args.offline, budget_s=args.budget,
                     engines_chosen=bool(args.engines or os.environ.get(RunSettings.ENV["engines"])))


def cmd_summary(args) -> int:
    run_dirs = args.run_dirs or [results.latest_run(args.results_dir)]
    for run_dir in run_dirs:
        if not Path(run_dir).is_dir():
            raise HarnessError(f"{run_dir} is not a run directory")
    print(report.summary_of(*run_dirs), end="")
    return 0


def cmd_compare(args) -> int:
    for run_dir in args.run_dirs:
        if not (run_dir / records.RUN_FILE).is_file():
            raise HarnessError(f"{run_dir} is not a run directory (it has no {records.RUN_FILE})")
    name = args.name or "--".join(d.name for d in args.run_dirs)
    out = args.results / analysis.COMPARISONS / name
    out.mkdir(parents=True, exist_ok=True)
    pairing = out / analysis.PAIRING_FILE
    records.write_json(pairing, {"runs": [str(d.resolve()) for d in args.run_dirs], "made": records.now()})
    found = analysis.analyze_dirs([], [pairing])
    path = analysis.write_comparison(found, out / results.COMPARISON_FILE)
    hosts = ", ".join(f"{r.info.hostname} ({r.info.profile})" for r in found.runs)
    print("\n".join([f"cases pairing runs of {hosts}:", *report.cases_table(found),
                     f"comparison written to {path}; `python -m harness site` shows it"]))
    return 0


def cmd_site(args) -> int:
    comparisons = [] if args.run_dirs else analysis.find_comparisons(args.results)
    found = analysis.analyze_dirs(args.run_dirs or dashboard.find_runs(args.results), comparisons)
    dashboard.build(found, args.out or args.results / "site", args.results / "asv")
    return 0


def cmd_config(args) -> int:
    settings = _settings(args)
    conf = merge(args.engine, settings.host, settings.overrides)
    width = max(map(len, conf))
    print(f"# engine {args.engine}, host {settings.host}: spark-defaults.conf format, secrets redacted")
    for key, setting in sorted(conf.items()):
        replaced = f" (replaces {', '.join(setting.replaced)})" if setting.replaced else ""
        print(f"{key.ljust(width)}  {redact(key, setting.value)}    # {setting.source}{replaced}")
    for warning in warnings(conf):
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def cmd_generate(args) -> int:
    settings = _settings(args)
    data.check_writable(settings.data_dir)
    for scale in settings.scales:
        for table in args.tables.split(","):
            path = data.ensure(table.strip(), scale_rows(scale), settings.seed, settings.data_dir)
            print(f"{table} at {scale}: {path}")
    return 0


def cmd_standalone(args) -> int:
    """Runs until Ctrl-C or SIGTERM, then stops every process it started."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with StandaloneCluster(args.workers, args.cores, args.memory) as running:
        print(f"standalone cluster at {running.url}: {args.workers} worker(s) x {args.cores} core(s), {args.memory} "
              f"(logs in {running.root})\nrun against it, e.g.:\n  python -m harness bench --host standalone "
              f"--master {running.url}\nCtrl-C stops it.", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass  # Ctrl-C is how it stops; leaving the block stops the cluster
    return 0


def cmd_fetch_jars(args) -> int:
    for kind in jars.KINDS:
        jars.fetch(kind)
    return 0


def cmd_fetch_tools(args) -> int:
    qualx.fetch()
    return 0


def cmd_qualify(args) -> int:
    run_dir = args.run_dir
    if not (run_dir / records.RUN_FILE).is_file():
        raise HarnessError(f"{run_dir} is not a run directory (it has no {records.RUN_FILE})")
    qualx.executable()  # says how to set the tools up, before anything is written
    found = qualx.qualify(run_dir)
    bench.finish(run_dir, 0)
    return 0 if found["state"] == "ok" else 1


def cmd_fetch_browser(args) -> int:
    browser.fetch()
    return 0


def cmd_keys(args) -> int:
    for name in args.names:
        if name not in keys.CATALOGUES:
            raise HarnessError(f"no key catalogue named '{name}' (known: {', '.join(keys.CATALOGUES)})")
        print(f"wrote {keys.write(name)}")
    return 0


def cmd_coverage(args) -> int:
    settings = _settings(args)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = args.out or REPO_ROOT / "results" / "coverage" / f"{stamp}-{records.environment()['hostname']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    path = coverage.write(out, settings, args.scale, args.engine)
    found = records.read_json(path) or {}
    print(report.coverage_table(found) + f"\ncoverage written to {path}")
    failed = [name for name, c in (found.get("workloads") or {}).items() if c.get("error")]
    return 0 if "unavailable" not in found and not failed else 1


def cmd_bundle(args) -> int:
    bundle.build_from_args(args)
    return 0


def cmd_rehearse(args) -> int:
    return rehearsal.from_args(args)


def cmd_doctor(args) -> int:
    """Runs each engine's real checks; exits 1 if an engine that is not opt-in cannot run here."""
    settings = RunSettings.from_env()
    settings = dataclasses.replace(settings, host=args.host or settings.host)
    env = records.environment()
    pairing = versions.pairing()
    print(f"java:    {env['java'] or 'not found'} ({shutil.which('java') or 'java is not on PATH'})")
    print(f"spark:   pinned {pairing.spark}, installed {_installed_pyspark()} (Scala {versions.installed_scala()})")
    for kind, spec in jars.KINDS.items():
        try:
            jar = jars.find(kind)
            print(f"{kind + ':':<9}{spec.title} {spec.pin.version}: {jar}")
        except HarnessError as err:
            print(f"{kind + ':':<9}" + str(err).replace("\n", "\n         "))
    for g in env["gpus"]:
        print(f"gpu {g['index']}:   {g['name']}, {g['memory_bytes'] / 2**30:.0f} GiB, driver {g['driver']}, "
              f"CUDA {g['cuda_driver_version'] // 1000}.{g['cuda_driver_version'] % 1000 // 10}")
    if not env["gpus"]:
        print(f"gpus:    none ({env['gpu_unavailable_reason']})")
    failed = 0
    for name in engines():
        engine = Engine.of(name, settings)
        try:
            engine.backend_module.preflight(engine)
            print(f"engine {name} ({engine.role}, {engine.backend}): can run here")
        except EngineUnavailable as err:
            failed += name in settings.engines
            print(f"engine {name} ({engine.role}, {engine.backend}): cannot run here: {str(err).splitlines()[0]}")
    return 1 if failed else 0


def _installed_pyspark() -> str:
    try:
        import pyspark
    except ImportError:
        return "none (install the suite: see README.md)"
    return pyspark.__version__


def cmd_workloads(args) -> int:
    for name, w in workloads.registry().items():
        forms = "spark" + (", dataframe" if w.frame else "")
        print(f"{name:<32} {w.family:<12} {','.join(w.tables):<30} {forms:<17} {w.description}")
    return 0


COMMANDS = {
    "bench": cmd_bench,
    "summary": cmd_summary,
    "compare": cmd_compare,
    "site": cmd_site,
    "config": cmd_config,
    "generate": cmd_generate,
    "bundle": cmd_bundle,
    "rehearse": cmd_rehearse,
    "coverage": cmd_coverage,
    "doctor": cmd_doctor,
    "workloads": cmd_workloads,
    "standalone": cmd_standalone,
    "fetch-jars": cmd_fetch_jars,
    "fetch-tools": cmd_fetch_tools,
    "qualify": cmd_qualify,
    "fetch-browser": cmd_fetch_browser,
    "keys": cmd_keys,
}
