"""``python -m harness bench``: one run, from its checks to its summary and site.

1. Check everything that can be checked before asv starts: every engine's configuration (misspelled Spark
   keys are warned about), the workload selection, that the data directory can be written.
2. Create the run directory and generate the datasets the run needs (progress on the console).
3. Start each engine's service once (a Spark Connect server per Spark engine, a Dask cluster per Dask
   engine), in parallel; an engine that cannot run here starts nothing and its benchmarks record why.
4. Run asv, whose benchmark processes are clients of those services.
5. Stop every service, whatever happened, mark the run complete or interrupted, and write the comparison,
   the summary and the site. Ctrl-C or SIGTERM stops the run cleanly: no process is left behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, replace
from pathlib import Path

from . import REPO_ROOT, EngineUnavailable, HarnessError, analysis, dashboard, data, qualx, records, report, results, services, workloads
from . import session, trial
from . import smoke as smoke_check
from .presets import Preset
from .progress import Progress
from .backends import Engine
from .config import AS_IS, RunSettings, scale_rows, warnings
from .trial import RUN_DIR_ENV

# With --workloads, asv runs only the workload benchmarks (and their plan coverage) unless told otherwise.
WORKLOAD_BENCHMARKS = r"^(workloads|coverage)\."
SMOKE_BENCHMARKS = r"^(workloads\.Workloads\.|coverage\.)"  # a dry run saves no tracks; no suite benchmarks
TIMED_WORKLOADS = r"^workloads\.Workloads\."  # a preset's later passes: plan coverage was explained in the first


BUDGET_RESERVE_S = 30  # of a wall-time budget, kept for stopping the services, the summary, site and archive


class Interrupted(Exception):
    """SIGTERM, treated like Ctrl-C: stop the run cleanly."""


class BudgetSpent(Exception):
    """The run's wall-time budget (--budget) is spent: stop cleanly and keep what finished."""


def check(settings: RunSettings) -> list[str]:
    """What would fail later, checked now: engines' configurations, the selection, the data directory."""
    found = []
    for engine in settings.engines:
        found += warnings(Engine.of(engine, settings).conf)
    workloads.selected(settings.workloads)
    spark_engines = [e for e in settings.engines if Engine.of(e, settings).backend == "spark"]
    if settings.remote and len(spark_engines) != 1:
        raise HarnessError("--remote benchmarks one Spark endpoint: name the one Spark engine whose configuration it "
                           "runs with in --engines, e.g. --engines gpu --remote sc://host:15002")
    data.check_writable(settings.data_dir)
    return list(dict.fromkeys(found))


def unavailable_engines(settings: RunSettings) -> dict[str, str]:
    """The run's engines that cannot run on this host (no GPU, no jar, no cuDF), each with why; not the Spark engine
    of --remote, whose endpoint is not this host."""
    found = {}
    for name in settings.engines:
        engine = Engine.of(name, settings)
        if settings.remote and engine.backend == "spark":
            continue
        try:
            engine.backend_module.preflight(engine)
        except EngineUnavailable as err:
            found[name] = str(err)
    return found


def provision(settings: RunSettings, offline: bool, progress=print) -> list[str]:
    """What this run's engines need fetched, fetched once into the cache (the Comet jar, the plugin jar for plan
    coverage, NVIDIA's prediction tools for CPU Spark): each that cannot be had is one line saying what to do,
    and the run goes on without it. Offline, only what is cached is used. Returns what is missing, in words."""
    from . import jars

    needs = {}
    for name in settings.engines:
        conf = Engine.of(name, settings).conf
        if session.uses_comet(conf):
            needs.setdefault("comet", []).append(name)
        if session.uses_plugin(conf):
            needs.setdefault("rapids", []).append(f"{name}'s plan coverage")
        if name == qualx.QUALIFIED_ENGINE:
            needs.setdefault("tools", []).append("QualX's predictions")
    missing = []
    for kind, users in needs.items():
        title = "NVIDIA's qualification tools" if kind == "tools" else f"the {jars.KINDS[kind].title} jar"
        try:
            qualx.executable() if kind == "tools" else jars.find(kind)
            continue
        except HarnessError:  # not cached: fetched below, unless offline
            if offline:
                missing.append(f"{title} is not cached (offline): {', '.join(users)} will go without it; "
                               f"{'`python -m harness fetch-tools`' if kind == 'tools' else '`python -m harness fetch-jars`'} "
                               "fetches it where there is network")
                continue
        try:
            qualx.fetch(progress) if kind == "tools" else jars.fetch(kind, progress)
        except (HarnessError, OSError) as err:
            missing.append(f"could not fetch {title}: {str(err).splitlines()[0]}; {', '.join(users)} will go without it")
    return missing


def prepare_data(settings: RunSettings, progress=print) -> None:
    chosen = [workloads.get(name) for name in workloads.selected(settings.workloads)]
    for scale in settings.scales:
        if scale == AS_IS:
            continue
        tables = sorted({data.derived_tables()[t].source if t in data.derived_tables() else t
                         for w in chosen for t in w.tables if t not in data.user_datasets()})
        for table in tables:
            data.ensure(table, scale_rows(scale), settings.seed, settings.data_dir, progress)


@contextlib.contextmanager
def started_services(settings: RunSettings, log_dir: Path, progress=print, phases: "Phases | None" = None):
    """Each engine's service, started together and stopped together; yields engine -> address."""
    phases = phases or Phases()
    chosen, attached = {}, {}
    if settings.session == "connect":
        for name in settings.engines:
            engine = Engine.of(name, settings)
            if settings.remote and engine.backend == "spark":
                continue  # the team's endpoint serves it
            try:
                conf = engine.backend_module.preflight(engine)
            except EngineUnavailable as err:
                progress(f"engine {name} cannot run here, nothing to start: {str(err).splitlines()[0]}")
                continue
            service = engine.backend_module.service(engine, conf, log_dir, settings)
            if isinstance(service, dict):  # one that already runs (a team's Dask cluster): checked, not started
                attached[name] = service
                progress(f"{name}: using the cluster at {service.get('scheduler') or service.get('scheduler_file')}")
            elif service is not None:
                chosen[name] = service
    started = []
    try:
        with phases.timed("server starts"):
            for name, service in chosen.items():  # from this thread: a service dies with the thread that started it
                progress(f"starting the {service.name} (log: {service.log})")
                started.append(service.start())
            addresses, problems = dict(attached), []
            with ThreadPoolExecutor(max_workers=max(1, len(chosen))) as pool:
                waits = {name: pool.submit(service.wait) for name, service in chosen.items()}
                for name, waiting in waits.items():
                    try:
                        addresses[name] = waiting.result()
                        progress(f"{name}: ready at {addresses[name].get('url') or addresses[name].get('scheduler')}")
                    except HarnessError as err:
                        problems.append(f"the {name} engine's service did not start: {err}")
        if problems:
            raise HarnessError("\n".join(problems))
        yield addresses
    finally:
        with phases.timed("server stops"), ThreadPoolExecutor(max_workers=max(1, len(started))) as pool:
            for stopped in [pool.submit(service.stop) for service in started]:  # together: each may take seconds
                stopped.result()


class Phases:
    """Wall time per phase of a run, for the summary's account of where the time went."""

    def __init__(self):
        self.began = time.perf_counter()
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def timed(self, name: str):
        began = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - began

    def described(self) -> dict:
        return {"wall_s": round(time.perf_counter() - self.began, 3),
                "phases": {name: round(s, 3) for name, s in self.seconds.items()}}


def run(settings: RunSettings, smoke: bool, bench_regex: str | None, asv_args: list[str], with_suite: bool,
        preset: Preset | None = None, archive: bool = False, offline: bool = False, budget_s: float | None = None,
        engines_chosen: bool = False, progress=print) -> int:
    """One run; whatever happens once its directory exists (a service that dies at start, a spent budget, Ctrl-C)
    it ends with its state, summary and site, and its archive when asked for, and says in one line what failed."""
    phases = Phases()
    deadline = phases.began + budget_s - BUDGET_RESERVE_S if budget_s else None
    if preset:
        settings = replace(settings, workloads=preset.workloads, scales=preset.scales,
                           **({"engines": preset.engines} if preset.engines and not engines_chosen else {}))
    with phases.timed("checks"):
        found_warnings = check(settings)
    with phases.timed("fetching"):
        found_warnings += provision(settings, offline, progress)
    for warning in found_warnings:
        progress(f"warning: {warning}")
    unavailable = unavailable_engines(settings)
    run_dir = records.new_run(settings, warnings=found_warnings)
    for name, reason in unavailable.items():  # recorded once here, not by a benchmark process each
        count = trial.record_skipped(run_dir, Engine.of(name, settings), settings, reason)
        progress(f"engine {name} cannot run here ({count} benchmarks recorded as skipped): {reason.splitlines()[0]}")
    runnable = tuple(e for e in settings.engines if e not in unavailable)
    if not runnable:
        records.update_run(run_dir, state="complete", ended=records.now())
        raise HarnessError("no engine of this run can run here (see above): `python -m harness doctor` says what each needs")
    settings = replace(settings, engines=runnable)
    if preset:
        records.update_run(run_dir, preset={"name": preset.name, "repeat": preset.repeat, "smoke": preset.smoke,
                                            "passes": [asdict(p) for p in preset.passes]})
    progress(f"prepbench: run directory {run_dir}" + (f" (preset {preset.name}: {preset.description})" if preset else ""))
    passes = _passes(settings, smoke, bench_regex, with_suite, preset)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    asv_status, state, failed = 1, "interrupted", None
    try:
        try:
            with phases.timed("data"):
                for chosen, _ in passes:
                    prepare_data(chosen, progress)
        except (HarnessError, OSError) as err:
            raise HarnessError(f"the datasets could not be prepared: {err}") from None
        with started_services(settings, run_dir / "logs", progress, phases) as addresses:
            try:
                if preset and preset.smoke:
                    with phases.timed("smoke check"):
                        smoke_check.check(settings, addresses, progress)
            except HarnessError as err:  # a broken accelerator stops the run before asv: seconds, not the run
                records.add_problem(run_dir, str(err))
                state = "complete"
            else:
                asv_status = 0
                for number, (chosen, regex) in enumerate(passes, start=1):
                    if deadline is not None and time.perf_counter() >= deadline:
                        raise BudgetSpent(f"the wall-time budget of {budget_s:.0f} s was spent before pass {number}")
                    if len(passes) > 1:
                        progress(f"prepbench: pass {number} of {len(passes)}: {', '.join(chosen.workloads)} at "
                                 f"{', '.join(chosen.scales)}")
                    env = {**os.environ, **chosen.to_env(), RUN_DIR_ENV: str(run_dir),
                           services.SERVICES_ENV: json.dumps(addresses)}
                    command = _asv_command(run_dir, smoke or preset is not None, preset, regex, asv_args, number)
                    with phases.timed("benchmarks"):
                        asv_status = _asv(command, env, run_dir, expected(chosen), progress, deadline) or asv_status
                state = "complete"
    except (KeyboardInterrupt, Interrupted):
        progress("prepbench: interrupted; the services are stopped and the run is marked interrupted")
    except BudgetSpent as err:
        failed = f"{err}: what finished is recorded"
        progress(f"prepbench: {failed}; the services are stopped")
        records.add_problem(run_dir, failed)
    except HarnessError as err:  # a service that died at start, data that could not be made: the run still ends
        failed = str(err)
        records.add_problem(run_dir, failed)
        state = "complete"
    finally:
        signal.signal(signal.SIGTERM, previous)
    if state == "complete":
        with phases.timed("qualification"):
            qualx.after_run(run_dir, settings, progress)
    status = finish(run_dir, asv_status if state == "complete" else 130, state, phases, progress)
    if archive:
        path = records.archive(run_dir)
        progress(f"run archive written to {path} ({path.stat().st_size / 2**20:.1f} MiB): copy it off the host, "
                 f"unpack it into results/runs/ there and run `python -m harness site`")
    if failed:
        lines = [line.strip() for line in failed.splitlines() if line.strip()]
        said = lines[0] + (f" ... {lines[-1]}" if len(lines) > 1 else "")
        print(f"prepbench: FAILED: {said} (details: {run_dir / 'summary.txt'})", file=sys.stderr)
    return status


def _passes(settings: RunSettings, smoke: bool, bench_regex: str | None, with_suite: bool,
            preset: Preset | None) -> list[tuple[RunSettings, str | None]]:
    """(settings, asv --bench regex) per asv run: one, or one per pass of a preset (plan coverage once)."""
    if preset:
        return [(replace(settings, workloads=p.workloads, scales=p.scales),
                 bench_regex or (SMOKE_BENCHMARKS if i == 0 else TIMED_WORKLOADS))
                for i, p in enumerate(preset.passes)]
    regex = bench_regex or (SMOKE_BENCHMARKS if smoke else None)
    if settings.workloads != ("*",) and not with_suite and not bench_regex:
        regex = SMOKE_BENCHMARKS if smoke else WORKLOAD_BENCHMARKS
    return [(settings, regex)]


def _asv_command(run_dir: Path, scratch: bool, preset: Preset | None, regex: str | None, asv_args: list[str],
                 number: int) -> list[str]:
    command = [sys.executable, "-m", "asv", "run", "--python=same"]
    if scratch:  # a smoke run or a preset: nothing saved to asv's history (a bundle's source has no commit)
        command += ["--dry-run", "--config", str(_scratch_asv_config(run_dir, number))]
        command += [f"--attribute=repeat={preset.repeat}"] if preset and preset.repeat else ["--quick"]
    else:
        command += ["--set-commit-hash", _commit()]
    if regex:
        command += ["--bench", regex]
    return command + [a for a in asv_args if a != "--"]


def expected(settings: RunSettings) -> list[tuple[str, str, str]]:
    """The benchmarks a pass runs, engine by engine as asv runs them: (engine, workload, scale)."""
    from .trial import scales

    chosen = workloads.selected(settings.workloads)
    return [(engine, workload, scale) for engine in settings.engines for workload in chosen
            for scale in scales(settings) if workloads.get(workload).runs_at(scale)]


def _asv(command: list[str], env: dict, run_dir: Path, benchmarks: list[tuple], progress,
         deadline: float | None = None) -> int:
    """Run asv with its output in the run's log and the run's progress on the console; on Ctrl-C, SIGTERM or a
    spent budget stop it (it stops its benchmark processes) and re-raise."""
    _ensure_asv_machine(env)
    log = run_dir / "logs" / "asv.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    progress(f"prepbench: {' '.join(command[1:4])} ... (asv's output: {log})")
    watcher = Progress(run_dir, benchmarks)
    with open(log, "a") as sink:
        sink.write("$ " + " ".join(command) + "\n")
        sink.flush()
        asv = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT)
        watcher.start()
        try:
            try:
                status = asv.wait(timeout=None if deadline is None else max(1.0, deadline - time.perf_counter()))
            except subprocess.TimeoutExpired:
                raise BudgetSpent("the wall-time budget was spent while asv ran") from None
        except (KeyboardInterrupt, Interrupted, BudgetSpent):
            asv.send_signal(signal.SIGINT)
            try:
                asv.wait(timeout=30)
            except subprocess.TimeoutExpired:
                asv.kill()
                asv.wait()
            raise
        finally:
            watcher.stop()
    if status != 0 and not watcher.done:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        progress(f"prepbench: asv exited with status {status} before any benchmark ended; the end of {log}:\n{tail}")
    return status


def finish(run_dir: Path, status: int, state: str | None = None, phases: Phases | None = None, progress=print) -> int:
    """The run's end (its state recorded, when given), then one analysis of it, rendered as the comparison, the
    site and the summary; returns the command's status, failing on the problems the analysis found."""
    began = time.perf_counter()
    if state is not None:
        records.update_run(run_dir, state=state, ended=records.now())
    found = analysis.analyze_dirs([run_dir])
    (run,) = found.runs
    dashboard.build(found, run_dir / "site", progress=progress)
    if phases is not None:
        phases.seconds["summary and site"] = time.perf_counter() - began
        run.info.timings = phases.described()
    records.update_run(run_dir, unfinished=[r.name for r in run.unfinished], timings=run.info.timings)
    path = analysis.write_comparison(found, run_dir / results.COMPARISON_FILE)
    text = report.summary(found)
    records.write_text(run_dir / "summary.txt", text)
    progress("\n" + text + f"\nsummary written to {run_dir / 'summary.txt'}; comparison written to {path}")
    problems = report.problems(found)
    for problem in problems:
        print(f"problem: {problem}", file=sys.stderr)
    return status or (1 if problems else 0)


def _interrupt(signum, frame):
    raise Interrupted()


def _scratch_asv_config(run_dir: Path, number: int = 1) -> Path:
    """asv.conf.json with asv's own files sent into the run directory: a smoke run leaves results/asv alone."""
    conf = records.asv_config(results_dir=str(run_dir / "asv"), html_dir=str(run_dir / "asv-html"))
    path = run_dir / "asv" / f"asv.conf.{number}.json" if number > 1 else run_dir / "asv" / "asv.conf.json"
    path.parent.mkdir(exist_ok=True)
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
    import platform

    machine_file = Path.home() / ".asv-machine.json"
    known = records.read_json(machine_file) or {}
    if platform.node() not in known:
        subprocess.run([sys.executable, "-m", "asv", "machine", "--yes"], cwd=REPO_ROOT, env=env, check=True,
                       stdout=subprocess.DEVNULL)

