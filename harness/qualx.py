"""NVIDIA's prediction of the GPU speedup: QualX, the qualification tool of spark-rapids-tools, run offline on
a run's CPU Spark event logs, in an environment of its own.

The tools (PyPI ``spark-rapids-user-tools``, pinned in ``pyproject.toml``) require ``pyspark<4``, so they
cannot live beside the suite's PySpark 4.1.3: ``python -m harness fetch-tools`` builds a virtual environment
for them under ``~/.cache/prepbench/tools/`` once (a Python 3.10 to 3.12: theirs), from the exact versions in
``conf/tools-requirements.txt``, moved into place only when complete. By default the tools download a Spark tarball at run time; here they never do: the tools
configuration names, as a class-path dependency, the jars of the PySpark 3.5 they installed beside themselves,
and their cache folder is an empty directory of the run's.

The tools exit 0 whatever happens (no log, a corrupt one, a failed model), so what they wrote is read instead.

``qualify(run_dir)`` runs ``spark_rapids qualification --platform onprem`` on the event logs of the run's
``cpu`` engine (QualX models CPU Spark applications; Comet's and the GPU's logs are kept for the profiling
tool and for users) and writes ``qualification.json``: the tools' version and model, each application's
estimated speedup, unsupported-operator share and the AutoTuner's recommended GPU settings (recorded, never
applied), and for each of the engine's records the predicted speedup of its own queries: the SQL executions
of its instrumented run (``spark_metrics.application`` and ``sql_executions``, found by its job tag), matched
by application and SQL id to ``per_sql.csv``, combined as their summed duration over their summed predicted
duration. What looks like an answer but is not one (QualX's fall-back to a speedup of 1.0 when its model fails,
a missing or empty ``per_sql.csv``, a tool that exits non-zero or times out, queries QualX skipped) is recorded
as *not predicted*, with the reason, never as a prediction.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import CONF_DIR, HarnessError, cost, records, results
from .config import RunSettings
from .jars import cache_dir
from .session import EVENT_LOGS
from .versions import pairing

QUALIFIED_ENGINE = "cpu"  # QualX models CPU Spark applications
PLATFORM = "onprem"
TIMEOUT_S = 900
CONFIG_FILE = "tools-config.yaml"
READY = "READY"  # written last into a complete environment
# QualX's own words when its model did not run: it then writes a speedup of 1.0 for every application.
MODEL_FAILED = re.compile(r"Failed to execute the prediction model[^\n]*")


class ToolsMissing(HarnessError):
    """The prediction tools are not set up; the message says how."""


def home() -> Path:
    pin = pairing().tools_pin
    return cache_dir() / "tools" / f"{pin.package}-{pin.version}"


def tools_python() -> Path:
    return home() / "venv" / "bin" / "python"


def executable() -> Path:
    """The tools' command, or ToolsMissing saying how to set them up."""
    command = home() / "venv" / "bin" / "spark_rapids"
    if not (home() / READY).is_file() or not command.is_file():
        raise ToolsMissing(f"NVIDIA's qualification tools are not set up (no {home() / READY}): run "
                           "`python -m harness fetch-tools` (once per machine, about 2 GB)")
    return command


def _interpreter() -> str:
    """A Python the tools support (they require 3.10 to 3.12): this one if it fits, else one on PATH."""
    if (3, 10) <= sys.version_info[:2] <= (3, 12):
        return sys.executable
    for name in ("python3.12", "python3.11", "python3.10"):
        if found := shutil.which(name):
            return found
    raise HarnessError(f"NVIDIA's qualification tools need Python 3.10 to 3.12 and this is {sys.version.split()[0]}: "
                       "install python3.12 (or run the suite on Python 3.11 or 3.12)")


def fetch(progress=print) -> Path:
    """Build the tools' environment once: a venv with the pinned package, and the offline tools configuration."""
    pin = pairing().tools_pin
    target = home()
    if (target / READY).is_file():
        progress(f"{pin.package} {pin.version} already set up: {target}")
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.partial-"))
    began = time.perf_counter()
    try:
        progress(f"setting up {pin.package} {pin.version} for QualX's predictions in {target} (once; about 2 GB)")
        _run([_interpreter(), "-m", "venv", str(partial / "venv")], "create the tools' virtual environment")
        python = str(partial / "venv" / "bin" / "python")
        _run([python, "-m", "pip", "install", "--no-deps", "--progress-bar", "on", "-r", str(lock_file())],
             f"install {pin.package} {pin.version} (is PyPI reachable?)", show=progress is print)
        spark_jars = _spark_jars(Path(python))
        (partial / CONFIG_FILE).write_text(tools_config(target / "venv", spark_jars.relative_to(partial / "venv")))
        (partial / READY).write_text(f"{pin.package}=={pin.version}\n")
        if target.exists():
            shutil.rmtree(target)
        os.replace(partial, target)
        _relink(target)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    size = sum(f.stat().st_size for f in target.rglob("*") if f.is_file() and not f.is_symlink())
    progress(f"{pin.package} {pin.version} set up in {time.perf_counter() - began:.0f} s ({size / 2**30:.1f} GiB): {target}")
    return target


def lock_file() -> Path:
    """conf/tools-requirements.txt: the tools and every package they run with, pinned; it must pin the version
    pyproject.toml names."""
    pin = pairing().tools_pin
    path = CONF_DIR / "tools-requirements.txt"
    if f"{pin.package}=={pin.version}" not in path.read_text().split():
        raise HarnessError(f"{path} does not pin {pin.package}=={pin.version} (pyproject.toml's): regenerate it")
    return path


def _run(command: list[str], what: str, show: bool = False) -> None:
    done = subprocess.run(command, stdout=None if show else subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise HarnessError(f"could not {what}: {(done.stderr or '').strip().splitlines()[-1:] or done.returncode}")


def _spark_jars(python: Path) -> Path:
    """The jars of the PySpark 3.5 the tools installed beside themselves (their Spark, offline)."""
    done = subprocess.run([str(python), "-c", "import pyspark, os; print(os.path.dirname(pyspark.__file__))"],
                          capture_output=True, text=True)
    jars = Path(done.stdout.strip()) / "jars"
    if done.returncode != 0 or not jars.is_dir():
        raise HarnessError(f"the tools' environment has no PySpark jars ({done.stderr.strip()[-300:]})")
    return jars


def tools_config(venv: Path, jars_relative: Path) -> str:
    """The tools configuration that keeps them offline: Spark is the installed PySpark's jars, on the class path,
    instead of the tarball they would download."""
    return ("# written by `python -m harness fetch-tools`: the tools' Spark is their own PySpark's jars, so nothing is\n"
            "# downloaded at run time (their default fetches a Spark tarball from the Apache archive)\n"
            "api_version: '1.1'\n"
            "runtime:\n"
            "  dependencies:\n"
            "    - name: spark jars\n"
            f"      uri: {venv / jars_relative}/*\n"
            "      dependency_type:\n"
            "        dep_type: classpath\n")


def _relink(target: Path) -> None:
    """A venv records its own path in its scripts: after the move, rewrite the paths that named the partial dir."""
    for script in (target / "venv" / "bin").iterdir():
        if script.is_file() and not script.is_symlink():
            try:
                text = script.read_text()
            except UnicodeDecodeError:
                continue
            fixed = re.sub(r"/\.[^/\s]*\.partial-[^/\s]+/", f"/{target.name}/", text)
            if fixed != text:
                script.write_text(fixed)
    for name in ("pyvenv.cfg", CONFIG_FILE):
        path = target / ("venv" if name == "pyvenv.cfg" else "") / name
        if path.is_file():
            path.write_text(re.sub(r"/\.[^/\s]*\.partial-[^/\s]+/", f"/{target.name}/", path.read_text()))


def version() -> dict:
    """The tools' version and the model QualX loads for the platform (its file and checksum: the output never
    names it)."""
    pin = pairing().tools_pin
    found = {"package": pin.package, "version": pin.version, "platform": PLATFORM, "model": PLATFORM}
    models = sorted((home() / "venv").glob(f"lib/python*/site-packages/spark_rapids_pytools/resources/qualx/models/"
                                          f"xgboost/{PLATFORM}.json"))
    if models:
        with open(models[0], "rb") as f:
            digest = hashlib.file_digest(f, "sha256").hexdigest()
        found.update(model=f"{PLATFORM} (XGBoost, {models[0].name}, sha256 {digest[:12]})")
    return found


# ---------------------------------------------------------------------------------------------- a run


def after_run(run_dir: Path, settings: RunSettings, progress=print) -> None:
    """bench's last step: qualify the run if the tools are set up and a CPU Spark engine wrote event logs; else
    say what to do. Never fails the run: a prediction that could not be made is recorded with why."""
    logs = Path(run_dir) / EVENT_LOGS / QUALIFIED_ENGINE
    if not logs.is_dir() or not any(logs.iterdir()):
        return
    try:
        executable()
    except ToolsMissing as err:
        progress(f"QualX: not predicted: {err}")
        return
    progress("QualX: predicting the GPU speedup of CPU Spark's queries from the run's event logs (offline)")
    found = qualify(run_dir, settings, progress)
    progress(f"QualX: {found['state']}" + (f": {found['reason']}" if found.get("reason") else
                                          f", {sum(1 for r in found['records'].values() if r.get('speedup'))} "
                                          f"benchmark(s) predicted"))


def qualify(run_dir: Path, settings: RunSettings | None = None, progress=print) -> dict:
    """Run the qualification on the run's CPU Spark event logs and write qualification.json; returns it."""
    run_dir = Path(run_dir)
    run = results.load(run_dir)
    settings = settings or RunSettings(host=run.info.profile or "local")
    wanted = [r for r in run.records if r.engine == QUALIFIED_ENGINE and r.status == "ok"]
    found = {"schema": 1, "tools": version(), "engine": QUALIFIED_ENGINE, "made": records.now(),
             "gpu_price": cost.pricing({k: s.value for k, s in settings.spark_conf(QUALIFIED_ENGINE).items()}, "gpu"),
             "applications": [], "records": {}}
    logs = run_dir / EVENT_LOGS / QUALIFIED_ENGINE
    try:
        if not logs.is_dir() or not any(logs.iterdir()):
            raise QualificationFailed(f"no event logs of the {QUALIFIED_ENGINE} engine in {logs}")
        output, log_text = _qualification(logs, run_dir, progress)
        found["applications"] = applications(output, log_text)
        per_sql = read_per_sql(output)
        found["records"] = {r.name: record_prediction(r, per_sql, found["applications"]) for r in wanted}
        found["state"] = "ok"
    except QualificationFailed as err:
        found.update(state="failed", reason=str(err))
        found["records"] = {r.name: {"speedup": None, "reason": str(err)} for r in wanted}
    records.write_json(run_dir / results.QUALIFICATION_FILE, found)
    return found


class QualificationFailed(HarnessError):
    """The tools gave no usable answer; the message says why."""


def _qualification(logs: Path, run_dir: Path, progress) -> tuple[Path, str]:
    """Run the tool into <run>/qualx/; returns its output folder and what it logged."""
    out = run_dir / "qualx"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    cache = out / ".tools-cache"  # empty: nothing may be downloaded into it
    cache.mkdir()
    command = [str(executable()), "qualification", "--platform", PLATFORM, "--eventlogs", str(logs),
               "--tools_config_file", str(home() / CONFIG_FILE), "--output_folder", str(out / "output")]
    env = {**os.environ, "RAPIDS_USER_TOOLS_CACHE_FOLDER": str(cache), "HOME": str(out)}  # its logs stay here
    env.pop("PYSPARK_PYTHON", None)
    env.pop("SPARK_HOME", None)
    log = out / "qualification.log"
    try:
        with open(log, "w") as sink:
            done = subprocess.run(command, stdout=sink, stderr=subprocess.STDOUT, env=env, timeout=TIMEOUT_S, cwd=out)
    except subprocess.TimeoutExpired:
        raise QualificationFailed(f"the qualification tool did not finish in {TIMEOUT_S} s (its log: {log})") from None
    text = log.read_text(errors="replace")
    if done.returncode != 0:
        last = [line for line in text.splitlines() if line.strip()][-1:] or ["no output"]
        raise QualificationFailed(f"the qualification tool exited with status {done.returncode}: {last[0][:300]} "
                                  f"(its log: {log})")
    downloaded = [p for p in cache.rglob("*") if p.is_file()]
    if downloaded:
        raise QualificationFailed(f"the qualification tool downloaded {downloaded[0].name} although it was given its "
                                  f"Spark jars: its configuration {home() / CONFIG_FILE} was not used")
    output = out / "output"
    if not _find(output, "qualification_summary.csv"):  # the tools exit 0 with nothing qualified, too
        why = [f"{_get(r, 'Event Log')}: {_get(r, 'Status')}: {_get(r, 'Description')}"
               for path in _find(output, "status.csv") for r in _rows(path) if _get(r, "Status") != "SUCCESS"]
        raise QualificationFailed("the qualification tool qualified no application" +
                                  (f" ({'; '.join(why)[:400]})" if why else f" (its log: {log})"))
    return output, text


def _find(output: Path, name: str) -> list[Path]:
    return sorted(output.rglob(name))


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return [{k.strip(): (v or "").strip() for k, v in row.items() if k} for row in csv.DictReader(f)]


def _get(row: dict, *names: str) -> str | None:
    """A column by any of its names, ignoring case, spaces and underscores."""
    norm = {re.sub(r"[\s_]", "", k).lower(): v for k, v in row.items()}
    for name in names:
        value = norm.get(re.sub(r"[\s_]", "", name).lower())
        if value not in (None, ""):
            return value
    return None


def _number(text: str | None) -> float | None:
    try:
        value = float(str(text).rstrip("%"))
    except (TypeError, ValueError):
        return None
    return value if value == value else None  # NaN: none


def applications(output: Path, log_text: str) -> list[dict]:
    """Each qualified application: its estimated speedup, whether QualX's model predicted it, its unsupported-
    operator share and the AutoTuner's recommended settings."""
    summaries = _find(output, "qualification_summary.csv")
    failed = MODEL_FAILED.search(log_text)
    found = []
    for row in _rows(summaries[0]) if summaries else []:
        app = _get(row, "App ID", "appId")
        item = {"app_id": app, "app_name": _get(row, "App Name", "appName"),
                "estimated_speedup": _number(_get(row, "Estimated GPU Speedup", "Speedup")),
                "category": _get(row, "Estimated GPU Speedup Category", "Recommendation"),
                "unsupported_pct": _number(_get(row, "Unsupported Operators Stage Duration Percent")),
                "predicted": failed is None, "reason": failed.group(0) if failed else None,
                "autotuner": autotuner(output, app)}
        found.append(item)
    return found


def autotuner(output: Path, app_id: str | None) -> list[str]:
    """The AutoTuner's recommended --conf lines (and their comments) for one application, as it wrote them."""
    if not app_id:
        return []
    logs = [p for p in _find(output, f"{app_id}.log") if "tuning" in p.parts]
    if not logs:
        return []
    return [line.rstrip() for line in logs[0].read_text(errors="replace").splitlines() if line.strip()][:80]


def read_per_sql(output: Path) -> dict[tuple[str, int], dict]:
    """(application, SQL id) -> QualX's row of per_sql.csv: the query's duration, predicted duration, speedup."""
    files = [p for p in _find(output, "per_sql.csv") if "xgboost_predictions" in p.parts] or _find(output, "per_sql.csv")
    found = {}
    for path in files:
        for row in _rows(path):
            app, sql = _get(row, "appId", "App ID"), _number(_get(row, "sqlID", "SQL ID"))
            if app and sql is not None:
                found[(app, int(sql))] = row
    return found


def record_prediction(record, per_sql: dict, apps: list[dict]) -> dict:
    """One benchmark's prediction: its instrumented run's SQL executions in per_sql.csv, combined as their summed
    duration over their summed predicted duration; or why there is none."""
    app = record.spark_metrics.get("application")
    ids = record.spark_metrics.get("sql_executions") or []
    base = {"application": app, "sql_ids": ids, "speedup": None}
    if not app or not ids:
        return {**base, "reason": "the benchmark's record does not say which SQL executions its instrumented run was "
                                  "(recorded from this version on)"}
    qualified = next((a for a in apps if a["app_id"] == app), None)
    if qualified is None:
        return {**base, "reason": f"QualX did not qualify application {app}"}
    if not qualified["predicted"]:
        return {**base, "reason": qualified["reason"] + " (QualX then writes 1.0 for every application: not a "
                                                        "prediction)", "unsupported_pct": qualified["unsupported_pct"]}
    rows = [per_sql[(app, i)] for i in ids if (app, i) in per_sql]
    if not rows:
        return {**base, "reason": f"QualX skipped this benchmark's queries (SQL ids {', '.join(map(str, ids))} are not "
                                  "in its per_sql.csv)", "unsupported_pct": qualified["unsupported_pct"]}
    cpu = sum(_number(_get(r, "Duration")) or 0 for r in rows)
    gpu = sum(_number(_get(r, "Duration_pred")) or 0 for r in rows)
    if cpu <= 0 or gpu <= 0:
        speedups = [_number(_get(r, "speedup_pred")) for r in rows]
        speedups = [s for s in speedups if s]
        if not speedups:
            return {**base, "reason": "QualX's per_sql.csv has no durations or speedups for these queries"}
        return {**base, "speedup": statistics.fmean(speedups), "queries": len(rows),
                "unsupported_pct": qualified["unsupported_pct"]}
    return {**base, "speedup": cpu / gpu, "queries": len(rows), "cpu_s": cpu / 1000, "gpu_s": gpu / 1000,
            "unsupported_pct": qualified["unsupported_pct"]}
