"""Results on disk: one directory per run, one JSON record per engine x workload x scale.

Every file is written atomically (a temporary file in the same directory, then a rename), so an interrupted
run leaves whole files or none. A run directory holds ``run.json`` (the host, versions, commit and settings,
redacted) and one record per benchmark; the report step reads nothing else.
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
from .config import RunSettings, host_memory_bytes, redact
from .versions import pairing

SCHEMA = 1
RUN_FILE = "run.json"
_ENV_PREFIXES = ("PREPBENCH_", "SPARK_", "PYSPARK_", "JAVA_", "RAPIDS_", "CUDA_", "AWS_", "HADOOP_")


def write_json(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", delete=False) as tmp:
        json.dump(payload, tmp, indent=1, sort_keys=True, default=str)
        tmp.write("\n")
    os.chmod(tmp.name, 0o644)  # results are shared and published; the temporary file was private
    os.replace(tmp.name, path)


def asv_config(**changes: str) -> dict:
    """asv.conf.json (asv allows // comments) with absolute paths, plus `changes`: a copy of it written
    anywhere works, because asv resolves relative paths from the configuration file's directory."""
    text = (REPO_ROOT / "asv.conf.json").read_text()
    conf = json.loads("\n".join(line for line in text.splitlines() if not line.strip().startswith("//")))
    conf.update(repo=str(REPO_ROOT), benchmark_dir=str(REPO_ROOT / conf["benchmark_dir"]),
                results_dir=str(REPO_ROOT / conf["results_dir"]), html_dir=str(REPO_ROOT / conf["html_dir"]))
    return {**conf, **changes}


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def new_run(settings: RunSettings) -> Path:
    """A fresh run directory, named by UTC time and host, with the run's description."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    name = f"{stamp}-{re.sub(r'[^A-Za-z0-9_.-]', '_', socket.gethostname())}"
    Path(settings.results_dir).mkdir(parents=True, exist_ok=True)
    for attempt in range(1, 1000):  # two runs started in the same second get -2, -3, ...
        run_dir = Path(settings.results_dir) / (name if attempt == 1 else f"{name}-{attempt}")
        try:
            run_dir.mkdir()
            break
        except FileExistsError:
            continue
    write_json(run_dir / RUN_FILE, {
        "schema": SCHEMA,
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "settings": {"host": settings.host, "scales": list(settings.scales), "seed": settings.seed,
                     "overrides": [_redact_override(o) for o in settings.overrides]},
        "environment": environment(),
    })
    return run_dir


def _redact_override(override: str) -> str:
    key, _, value = override.partition("=")
    return f"{key}={redact(key, value)}"


def record_path(run_dir: Path, engine: str, workload: str, scale: str, variant: str = "") -> Path:
    return Path(run_dir) / f"{workload}.{engine}.{scale}{'@' + variant if variant else ''}.json"


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
        "scala": pairing().scala,
        "gpus": gpus,
        "gpu_unavailable_reason": gpu_problem,
        "commit": _git("rev-parse", "HEAD"),
        "worktree_dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "env": {k: redact(k, v) for k, v in sorted(os.environ.items()) if k.startswith(_ENV_PREFIXES)},
    }


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
