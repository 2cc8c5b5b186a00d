"""A GPU host lent through a narrow channel, rehearsed here: the same calls, each in a fresh copy of the working
tree with its carried paths, against a local directory standing in for the host, with the channel's limits
enforced, so that the real run cannot waste its window on a mistake this machine could have shown.

The channel (the device tool's README): each call runs one command in a fresh copy of the working tree plus the
paths it carries, at most 64 MiB in all, for at most 10 minutes; what the command writes under $OUT comes back,
at most 8 files of at most 16 MiB; a machine idle for 30 seconds is wiped, so calls go back to back.

``calls(bundle)`` is the sequence, written once: the first call checks the host and stages the first part, each
next one stages its part as it arrives, the last one also installs the suite, runs the gpu-check preset within
its budget and brings the run's archive back through $OUT. ``python -m harness rehearse`` runs it here and
prints how long each call took; README.md ("A GPU host in one shot") gives the same commands for the real one.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from . import REPO_ROOT, HarnessError
from .bundle import MANIFEST

CARRY_LIMIT = 64 << 20
CALL_LIMIT_S = 600
IDLE_LIMIT_S = 30
BACK_FILES, BACK_BYTES = 8, 16 << 20
KIT = ("install.sh", "install.py", "gpu_host.py", MANIFEST, "SHA256SUMS", "bootstrap")
PRESET_BUDGET_S = 300


@dataclass(frozen=True)
class Call:
    carry: tuple[str, ...]  # paths relative to the repository root, as the device tool's `carry` takes them
    command: str


def calls(bundle: Path, budget_s: int = PRESET_BUDGET_S, narrowed: tuple[str, ...] = ()) -> list[Call]:
    """The calls that install and run the suite on the host, one payload part each."""
    bundle = Path(bundle).resolve()
    try:
        relative = bundle.relative_to(REPO_ROOT)
    except ValueError:
        raise HarnessError(f"{bundle} is not inside the repository: build the bundle under .bundle/ (git ignores it), "
                           "so that calls can carry it") from None
    parts = [p["name"] for p in json.loads((bundle / MANIFEST).read_text())["parts"]]
    script = f"python3 {relative}/gpu_host.py"
    found = []
    for number, part in enumerate(parts, start=1):
        steps = [f"{script} stage {relative} {relative}/{part}"]
        if number == len(parts):
            steps += [f"{script} install", f'{script} run "$OUT" --budget {budget_s}'
                      + (" -- " + " ".join(narrowed) if narrowed else "")]
        command = " && ".join(steps)
        if number == 1:  # what the host has, said first whatever it is
            command = f"{script} preflight ; {command}"
        found.append(Call(tuple(f"{relative}/{name}" for name in (*KIT, part)), command))
    return found


def narrow_call(bundle: Path, budget_s: int = 200) -> Call:
    """The second command, if the first run failed: one GPU workload, CUDA's modules loaded eagerly."""
    relative = Path(bundle).resolve().relative_to(REPO_ROOT)
    return Call((f"{relative}/gpu_host.py",), f'python3 {relative}/gpu_host.py narrow "$OUT" --budget {budget_s}')


def _tree_files() -> list[Path]:
    """The working tree as the device tool copies it: tracked files and untracked ones git does not ignore."""
    listed = subprocess.run(["git", "-C", str(REPO_ROOT), "ls-files", "-co", "--exclude-standard", "-z"],
                            capture_output=True, text=True, check=True).stdout
    return [Path(name) for name in listed.split("\0") if name and (REPO_ROOT / name).is_file()]


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else path.stat().st_size


def rehearse(bundle: Path, host: Path, host_python: str, budget_s: int = PRESET_BUDGET_S, narrowed: tuple[str, ...] = (),
              progress=print) -> list[dict]:
    """Every call of `calls(bundle)` against `host` (a fresh directory standing in for the GPU host), limits
    enforced; returns a row per call and raises HarnessError on the first limit broken or call failed."""
    host = Path(host).resolve()
    if host.exists() and any(host.iterdir()):
        raise HarnessError(f"{host} is not empty: the rehearsal starts from a fresh host")
    home = host / "home"
    home.mkdir(parents=True)
    tree = _tree_files()
    tree_bytes = sum((REPO_ROOT / f).stat().st_size for f in tree)
    rows, ended = [], None
    for number, call in enumerate(calls(bundle, budget_s, narrowed), start=1):
        began = time.monotonic()
        if ended is not None and began - ended > IDLE_LIMIT_S:
            raise HarnessError(f"call {number} started {began - ended:.0f} s after the last one: the host would have "
                               f"been wiped after {IDLE_LIMIT_S} s idle")
        work = host / f"call-{number}"
        copy, out = work / "repo", work / "out"
        for name in tree:
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / name, copy / name)
        carried = sum(_size(REPO_ROOT / c) for c in call.carry)
        if tree_bytes + carried > CARRY_LIMIT:
            raise HarnessError(f"call {number} would carry {(tree_bytes + carried) / 2**20:.1f} MiB (the tree "
                               f"{tree_bytes / 2**20:.1f} MiB and {carried / 2**20:.1f} MiB carried): the channel takes "
                               f"{CARRY_LIMIT >> 20} MiB")
        for path in call.carry:
            source, target = REPO_ROOT / path, copy / path
            target.parent.mkdir(parents=True, exist_ok=True)
            (shutil.copytree if source.is_dir() else shutil.copy2)(source, target)
        out.mkdir()
        env = {**os.environ, "HOME": str(home), "OUT": str(out), "PREPBENCH_HOST_PYTHON": host_python,
               "PREPBENCH_HOST_HOME": str(home / "prepbench-host")}
        for variable in ("VIRTUAL_ENV", "PYTHONPATH", "PREPBENCH_DATA_DIR", "PREPBENCH_SERVICES", "XDG_CACHE_HOME"):
            env.pop(variable, None)
        ran = time.monotonic()
        try:
            done = subprocess.run(["bash", "-c", call.command], cwd=copy, env=env, capture_output=True, text=True,
                                  timeout=CALL_LIMIT_S)
        except subprocess.TimeoutExpired:
            raise HarnessError(f"call {number} ran past the channel's {CALL_LIMIT_S} s") from None
        ended = time.monotonic()
        (work / "output.txt").write_text(done.stdout + done.stderr)
        back = [f for f in out.rglob("*") if f.is_file()]
        row = {"call": number, "carried_mib": round((tree_bytes + carried) / 2**20, 1), "copy_s": round(ran - began, 1),
               "command_s": round(ended - ran, 1), "status": done.returncode, "back": [f.name for f in back]}
        rows.append(row)
        progress(f"call {number}: {row['carried_mib']} MiB carried, {row['command_s']} s, status {done.returncode}, "
                 f"{len(back)} file(s) back (its output: {work / 'output.txt'})")
        if len(back) > BACK_FILES or any(f.stat().st_size > BACK_BYTES for f in back):
            raise HarnessError(f"call {number} left {len(back)} file(s) in $OUT, the largest "
                               f"{max(f.stat().st_size for f in back) / 2**20:.1f} MiB: at most {BACK_FILES} of "
                               f"{BACK_BYTES >> 20} MiB come back")
        if done.returncode != 0:
            raise HarnessError(f"call {number} failed with status {done.returncode}: "
                               f"{(done.stdout + done.stderr).strip().splitlines()[-1:]} (its output: {work / 'output.txt'})")
    return rows


def add_arguments(parser) -> None:
    parser.add_argument("bundle", type=Path, help="a bundle built under .bundle/ (python -m harness bundle "
                        ".bundle/gpu --gpu-arch sm_90 --minimal --host-packages --split 48M --python-version 3.12)")
    parser.add_argument("--host", type=Path, help="a fresh directory standing in for the host (default: a new "
                        "temporary one)")
    parser.add_argument("--host-python", default=None, help="the host's Python, with its packages (default: this one)")
    parser.add_argument("--budget", type=int, default=PRESET_BUDGET_S, help="the preset's wall-time budget, seconds")


def from_args(args) -> int:
    import sys

    host = args.host or Path(tempfile.mkdtemp(prefix="prepbench-host-"))
    rows = rehearse(args.bundle, host, args.host_python or sys.executable, args.budget)
    total = sum(r["copy_s"] + r["command_s"] for r in rows)
    print(f"rehearsal passed: {len(rows)} call(s), {total:.0f} s of calls; the host is {host}")
    return 0
