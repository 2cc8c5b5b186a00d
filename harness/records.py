"""Results on disk: atomic writes, run directories and what a run says about its host.

Every file is written atomically (a temporary file in the same directory, then a rename), so an interrupted
run leaves whole files or none. A run directory holds ``run.json`` (the host, versions, commit and settings,
redacted; whether the run is still running, complete or interrupted) and one record per benchmark, which
``results`` reads.
"""

from __future__ import annotations

import json
import os
import platform
import re
import socket
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from . import REPO_ROOT, gpu
from .config import RunSettings, host_memory_bytes, redact, redact_text
from .versions import pairing

RUN_SCHEMA = 2
RUN_FILE = "run.json"
_ENV_PREFIXES = ("PREPBENCH_", "SPARK_", "PYSPARK_", "JAVA_", "RAPIDS_", "COMET_", "CUDA_", "AWS_", "HADOOP_")
# PREPBENCH_CONF is recorded parsed and redacted in settings.overrides, never raw; PREPBENCH_SERVICES holds the
# run's service addresses with their secrets (a token, TLS keys), which are never recorded
_NOT_RECORDED_ENV = ("PREPBENCH_CONF", "PREPBENCH_SERVICES")


def write_json(path: Path, payload: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", delete=False) as tmp:
        json.dump(payload, tmp, indent=1, sort_keys=True, default=str)
        tmp.write("\n")
    os.chmod(tmp.name, 0o644)  # results are shared and published; the temporary file was private
    os.replace(tmp.name, path)


def write_text(path: Path, text: str) -> None:
    path = Path(path)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", delete=False) as tmp:
        tmp.write(text)
    os.chmod(tmp.name, 0o644)
    os.replace(tmp.name, path)


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def asv_config(**changes: str) -> dict:
    """asv.conf.json (asv allows // comments) with absolute paths, plus `changes`: a copy of it written
    anywhere works, because asv resolves relative paths from the configuration file's directory."""
    text = (REPO_ROOT / "asv.conf.json").read_text()
    conf = json.loads("\n".join(line for line in text.splitlines() if not line.strip().startswith("//")))
    conf.update(repo=str(REPO_ROOT), benchmark_dir=str(REPO_ROOT / conf["benchmark_dir"]),
                results_dir=str(REPO_ROOT / conf["results_dir"]), html_dir=str(REPO_ROOT / conf["html_dir"]))
    return {**conf, **changes}


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def new_run(settings: RunSettings, environment_: dict | None = None, warnings: list[str] = ()) -> Path:
    """A fresh run directory, named by UTC time and host, with the run's description (state: running)."""
    environment_ = environment_ if environment_ is not None else environment()
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    name = f"{stamp}-{re.sub(r'[^A-Za-z0-9_.-]', '_', environment_.get('hostname') or 'unknown')}"
    Path(settings.results_dir).mkdir(parents=True, exist_ok=True)
    for attempt in range(1, 1000):  # two runs started in the same second get -2, -3, ...
        run_dir = Path(settings.results_dir) / (name if attempt == 1 else f"{name}-{attempt}")
        try:
            run_dir.mkdir()
            break
        except FileExistsError:
            continue
    write_json(run_dir / RUN_FILE, {"schema": RUN_SCHEMA, "started": now(), "state": "running",
                                    "settings": settings.described(), "environment": environment_,
                                    "warnings": list(warnings), "problems": []})
    return run_dir


def update_run(run_dir: Path, **changes) -> None:
    """Change run.json's fields (state, ended, problems), keeping the rest."""
    info = read_json(Path(run_dir) / RUN_FILE) or {}
    info.update(changes)
    write_json(Path(run_dir) / RUN_FILE, info)


ARCHIVE_LEAVES_OUT = ("outputs", "asv-html")  # the kept rows (checked on the host already), asv's own pages


def archive(run_dir: Path) -> Path:
    """The run directory as one RUN.tar.gz beside it (written atomically), to take results off a host: records,
    summary, comparison, site, the services' logs and crash reports, event logs; not the kept output rows."""
    import tarfile

    run_dir = Path(run_dir)
    target = run_dir.with_name(run_dir.name + ".tar.gz")
    skip = lambda info: None if Path(info.name).parts[1:2] and Path(info.name).parts[1] in ARCHIVE_LEAVES_OUT else info
    with tempfile.NamedTemporaryFile(dir=run_dir.parent, prefix=f".{target.name}.", delete=False) as tmp:
        with tarfile.open(fileobj=tmp, mode="w:gz") as tar:
            tar.add(run_dir, arcname=run_dir.name, filter=skip)
    os.chmod(tmp.name, 0o644)
    os.replace(tmp.name, target)
    return target


def add_problem(run_dir: Path, problem: str) -> None:
    info = read_json(Path(run_dir) / RUN_FILE) or {}
    update_run(run_dir, problems=[*(info.get("problems") or []), redact_text(problem)])


def environment() -> dict:
    """The host and software a result came from, with secret-looking environment values redacted."""
    gpus, gpu_problem = gpu.probe()
    return {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_bytes": host_memory_bytes() or None,
        "python": sys.version.split()[0],
        "java": _java_version(),
        "spark": pairing().spark,
        "rapids_plugin": pairing().rapids,
        "comet": pairing().comet,
        "scala": pairing().scala,
        "packages": packages(),
        "gpus": gpus,
        "gpu_unavailable_reason": gpu_problem,
        "commit": _git("rev-parse", "HEAD"),
        "worktree_dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "env": {k: redact(k, v) for k, v in sorted(os.environ.items())
                if k.startswith(_ENV_PREFIXES) and k not in _NOT_RECORDED_ENV},
    }


def packages() -> dict[str, str | None]:
    """The versions of the Python packages results depend on, as installed (a GPU host's own numpy or pandas,
    reused by a --host-packages bundle, may differ from the pins)."""
    from importlib import metadata

    found = {}
    for name in ("pyspark", "numpy", "pandas", "pyarrow", "jinja2", "grpcio", "dask", "distributed", "nvidia-ml-py"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def _cpu_model() -> str:
    try:
        names = [l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                 if l.startswith("model name")]
    except OSError:
        names = []
    return names[0] if names else platform.processor() or "unknown"


def _java_version() -> str | None:
    try:
        done = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=30)
        return done.stderr.splitlines()[0] if done.stderr else None
    except (OSError, subprocess.SubprocessError):
        return None


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=30)
        return done.stdout.strip() if done.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None

