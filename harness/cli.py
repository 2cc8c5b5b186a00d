"""``python -m harness``: run the benchmarks through asv, summarize a run, inspect configuration, fetch data."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from . import (REPO_ROOT, HarnessError, browser, bundle, cluster, coverage, dashboard, data, plugin, records, report,
               session, versions, workloads)
from .config import RunSettings, engines, merge, redact, scale_rows
from .standalone import StandaloneCluster
from .trial import RUN_DIR_ENV

SMOKE_SCALE = "1e4"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    bench = commands.add_parser("bench", help="run the asv benchmarks, then summarize the run")
    bench.add_argument("--smoke", action="store_true",
                       help=f"every benchmark once at scale {SMOKE_SCALE}, not saved to asv's history (asv --dry-run)")
    _run_options(bench)
    bench.add_argument("--sweep", action="store_true", help="add the configuration sweep in conf/sweep.conf")
    bench.add_argument("--bench", "-b", metavar="REGEX", help="only benchmarks whose name matches (asv --bench)")
    bench.add_argument("asv_args", nargs=argparse.REMAINDER, help="after --: passed to `asv run` unchanged")

    show = commands.add_parser("summary", help="print the summary of a run (the latest by default)")
    show.add_argument("run_dir", nargs="?", type=Path)
    show.add_argument("--results-dir", type=Path, default=RunSettings().results_dir)

    conf = commands.add_parser("config", help="show the merged Spark configuration and where each value comes from")
    conf.add_argument("--engine", default="cpu", help="an engine in conf/engines/, e.g. gpu or gpu-rapids-shuffle")
    _run_options(conf)

    gen = commands.add_parser("generate", help="generate (or check) the cached datasets")
    gen.add_argument("--tables", default=",".join(data.TABLES), help="comma-separated tables (default: all)")
    _run_options(gen)

    cover = commands.add_parser("coverage", help="which operators the RAPIDS plugin would run on the GPU (no GPU needed)")
    cover.add_argument("--scale", default=SMOKE_SCALE, help=f"data scale to build the plans on (default {SMOKE_SCALE})")
    cover.add_argument("--engine", default="gpu", help="the GPU engine whose configuration to explain (default gpu)")
    _run_options(cover)

    pack = commands.add_parser("bundle", help="build an offline bundle (source, wheels, plugin jar, checksums)")
    pack.add_argument("output", type=Path, help="directory to create")
    pack.add_argument("--python-version", default=f"{sys.version_info.major}.{sys.version_info.minor}",
                      help="Python of the offline host (default: this one's)")
    pack.add_argument("--platform", action="append", help="pip platform tag(s) of the offline host "
                      f"(default: {', '.join(bundle.PLATFORMS)})")

    site = commands.add_parser("site", help="write the comparison site (index.html, CSV, JSON, asv's history) "
                                            "from the results")
    site.add_argument("run_dirs", nargs="*", type=Path, help="only these run directories (default: every run "
                      "under --results, in runs/ and smoke/)")
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
    commands.add_parser("fetch-plugin", help="download the pinned RAPIDS Accelerator jar into the cache")
    commands.add_parser("fetch-browser", help="install Chromium and chromedriver for the browser tests, if missing "
                                              "(apt-get, as root)")
    keys = commands.add_parser("rapids-keys", help="rewrite conf/keys/rapids-<version>.tsv from the plugin jar")
    keys.add_argument("--jar", type=Path, help="the plugin jar (default: the one the GPU engine would use)")

    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except HarnessError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def _run_options(parser) -> None:
    parser.add_argument("--host", help="host overlay in conf/hosts/ (default: local)")
    parser.add_argument("--engines", help="comma-separated engines from conf/engines/ (default: cpu,gpu)")
    parser.add_argument("--scales", help="comma-separated row counts, e.g. 1e6,1e7 (default: 1e6,1e7)")
    for option, (key, metavar, text) in cluster.LAYOUT_OPTIONS.items():
        parser.add_argument(f"--{option.replace('_', '-')}", metavar=metavar, help=f"{text}: sets {key}")
    parser.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE",
                        help="override a Spark property; repeatable; wins over every file")
    parser.add_argument("--data-dir", help="dataset cache: a directory or a URI Spark reads "
                        "(file://, hdfs://, s3a://); default ~/.cache/prepbench/data")
    parser.add_argument("--workloads", help="comma-separated names or glob patterns, e.g. 'join_*,ml_pipeline'")
    parser.add_argument("--results-dir", type=Path, help="where run directories go (default: results/runs)")


def _settings(args, default_scales=None) -> RunSettings:
    """Environment first (PREPBENCH_*), then command-line options on top."""
    base = RunSettings.from_env()
    scales = args.scales or default_scales
    return RunSettings(
        host=args.host or base.host,
        engines=tuple(e.strip() for e in args.engines.split(",")) if getattr(args, "engines", None) else base.engines,
        scales=tuple(s.strip() for s in scales.split(",")) if scales else base.scales,
        overrides=(*base.overrides, *_layout_overrides(args), *args.conf),
        seed=base.seed,
        workloads=tuple(w.strip() for w in args.workloads.split(",")) if getattr(args, "workloads", None) else base.workloads,
        data_dir=data.as_location(args.data_dir) if getattr(args, "data_dir", None) else base.data_dir,
        results_dir=args.results_dir or base.results_dir,
    )


def _layout_overrides(args) -> list[str]:
    """--master, --executors, ...: command-line overrides of their Spark properties."""
    return [f"{key}={getattr(args, option)}" for option, (key, _, _) in cluster.LAYOUT_OPTIONS.items()
            if getattr(args, option) is not None]


def cmd_bench(args) -> int:
    smoke_results = REPO_ROOT / "results" / "smoke"
    if args.smoke and not args.results_dir:
        args.results_dir = smoke_results
    settings = _settings(args, default_scales=SMOKE_SCALE if args.smoke else None)
    settings = dataclasses.replace(settings, sweep=args.sweep or settings.sweep)
    for engine in settings.engines:  # bad configuration fails here, before asv starts a process per benchmark
        cluster.check_master(settings.spark_conf(engine))
    workloads.selected(settings.workloads)
    run_dir = records.new_run(settings)
    print(f"prepbench: run directory {run_dir}", flush=True)
    env = {**os.environ, **settings.to_env(), RUN_DIR_ENV: str(run_dir)}
    _ensure_asv_machine(env)
    command = [sys.executable, "-m", "asv", "run", "--python=same"]
    if args.smoke:
        command += ["--dry-run", "--quick", "--config", str(_scratch_asv_config(run_dir))]
    else:
        command += ["--set-commit-hash", _commit()]
    if args.bench:
        command += ["--bench", args.bench]
    command += [a for a in args.asv_args if a != "--"]
    print("prepbench: " + " ".join(command), flush=True)
    asv_status = subprocess.run(command, cwd=REPO_ROOT, env=env).returncode
    print(f"prepbench: comparison written to {report.write_comparison(run_dir)}")
    text = report.summary(run_dir)
    summary_file = run_dir / "summary.txt"
    tmp = summary_file.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, summary_file)
    print("\n" + text + f"\nsummary written to {summary_file}")
    dashboard.build([run_dir], run_dir / "site", Path(records.asv_config()["results_dir"]))
    problems = report.problems(run_dir)
    for problem in problems:
        print(f"problem: {problem}", file=sys.stderr)
    return asv_status or (1 if problems else 0)


def _scratch_asv_config(run_dir: Path) -> Path:
    """asv.conf.json with asv's own files sent into the run directory: a smoke run leaves results/asv alone."""
    conf = records.asv_config(results_dir=str(run_dir / "asv"), html_dir=str(run_dir / "asv-html"))
    path = run_dir / "asv" / "asv.conf.json"
    path.parent.mkdir()
    path.write_text(json.dumps(conf, indent=1))
    return path


def _commit() -> str:
    done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise HarnessError("asv saves results per commit: run from a git checkout with at least one commit "
                           "(or use --smoke, which saves nothing to asv's history)")
    return done.stdout.strip()


def _ensure_asv_machine(env) -> None:
    """asv asks about the machine interactively the first time; answer with its detected defaults."""
    machine_file = Path.home() / ".asv-machine.json"
    known = records.read_json(machine_file) or {}
    if platform.node() not in known:
        subprocess.run([sys.executable, "-m", "asv", "machine", "--yes"], cwd=REPO_ROOT, env=env, check=True,
                       stdout=subprocess.DEVNULL)


def cmd_summary(args) -> int:
    run_dir = args.run_dir or report.latest_run(args.results_dir)
    print(report.summary(run_dir), end="")
    return 0


def cmd_site(args) -> int:
    dashboard.build(args.run_dirs or dashboard.find_runs(args.results), args.out or args.results / "site",
                    args.results / "asv")
    return 0


def cmd_config(args) -> int:
    settings = _settings(args)
    conf = merge(args.engine, settings.host, settings.overrides)
    width = max(map(len, conf))
    print(f"# engine {args.engine}, host {settings.host}: spark-defaults.conf format, secrets redacted")
    for key, setting in sorted(conf.items()):
        replaced = f" (replaces {', '.join(setting.replaced)})" if setting.replaced else ""
        print(f"{key.ljust(width)}  {redact(key, setting.value)}    # {setting.source}{replaced}")
    return 0


def cmd_generate(args) -> int:
    settings = _settings(args)
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


def cmd_fetch_plugin(args) -> int:
    plugin.fetch_jar()
    return 0


def cmd_fetch_browser(args) -> int:
    browser.fetch()
    return 0


def cmd_rapids_keys(args) -> int:
    print(f"wrote {plugin.write_catalogue(args.jar or plugin.find_jar())}")
    return 0


def cmd_coverage(args) -> int:
    settings = _settings(args)
    run_dir = records.new_run(settings)
    path = coverage.write(run_dir, settings, args.scale, args.engine)
    print(report.coverage_table(run_dir) + f"\ncoverage written to {path}")
    return 0 if "unavailable" not in (records.read_json(path) or {}) else 1


def cmd_bundle(args) -> int:
    bundle.build(args.output, args.python_version, tuple(args.platform or bundle.PLATFORMS))
    return 0


def cmd_doctor(args) -> int:
    """Runs each engine's real pre-JVM checks; exits 1 if any engine cannot run here."""
    settings = RunSettings.from_env()
    settings = dataclasses.replace(settings, host=args.host or settings.host)
    env = records.environment()
    pairing_ = versions.pairing()
    print(f"java:    {env['java'] or 'not found'} ({shutil.which('java') or 'java is not on PATH'})")
    print(f"spark:   pinned {pairing_.spark}, installed {_installed_pyspark()}")
    print(f"plugin:  RAPIDS Accelerator {pairing_.rapids} (Scala {pairing_.scala}), shim {pairing_.shim}")
    try:
        jar = plugin.find_jar()
        facts = plugin.jar_facts(jar)
        print(f"         jar {jar}: RAPIDS {facts.version}, Scala {facts.scala}, CUDA {facts.cuda_major}, "
              f"{'supports' if pairing_.shim in facts.shims else 'does NOT support'} Spark {pairing_.spark}")
        print(f"         PySpark's Scala: {plugin.installed_scala()}; RAPIDS shuffle manager: {pairing_.shuffle_manager}")
    except HarnessError as err:
        print("         " + str(err).replace("\n", "\n         "))
    for g in env["gpus"]:
        print(f"gpu {g['index']}:   {g['name']}, {g['memory_bytes'] / 2**30:.0f} GiB, driver {g['driver']}, "
              f"CUDA {g['cuda_driver_version'] // 1000}.{g['cuda_driver_version'] % 1000 // 10}")
    if not env["gpus"]:
        print(f"gpus:    none ({env['gpu_unavailable_reason']})")
    failed = 0
    for engine in engines():
        try:
            session.preflight(engine, settings.spark_conf(engine))
            print(f"engine {engine}: can run here")
        except HarnessError as err:
            failed += 1
            print(f"engine {engine}: cannot run here: {err}")
    return 1 if failed else 0


def _installed_pyspark() -> str:
    try:
        import pyspark
    except ImportError:
        return "none (install the suite: see README.md)"
    return pyspark.__version__


def cmd_workloads(args) -> int:
    for name, w in workloads.registry().items():
        print(f"{name:<24} {w.family:<10} {','.join(w.tables):<22} {w.description}")
    return 0


COMMANDS = {
    "bench": cmd_bench,
    "summary": cmd_summary,
    "site": cmd_site,
    "config": cmd_config,
    "generate": cmd_generate,
    "bundle": cmd_bundle,
    "coverage": cmd_coverage,
    "doctor": cmd_doctor,
    "workloads": cmd_workloads,
    "standalone": cmd_standalone,
    "fetch-plugin": cmd_fetch_plugin,
    "fetch-browser": cmd_fetch_browser,
    "rapids-keys": cmd_rapids_keys,
}
