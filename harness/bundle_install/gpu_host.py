"""What each call's command runs on a GPU host reached through a narrow channel (a few calls, each bringing at
most 64 MiB and taking files back from $OUT), with the Python standard library only: the suite is not
installed yet when it starts. README.md ("A GPU host in one shot") gives the sequence of calls.

    python3 gpu_host.py preflight                 the GPU, driver and CUDA, this Python and its packages, free
                                                  disk and memory, GPM support: a table, before anything else
    python3 gpu_host.py stage KIT PART...         copy the bundle's small files (KIT) once, then check each part
                                                  that arrived and move it into the staging folder (k/N)
    python3 gpu_host.py install                   install the suite from the staged parts (and ldd its Java)
    python3 gpu_host.py run OUT [--budget S] [-- BENCH OPTIONS]
                                                  the gpu-check preset on the gpu-local profile within S seconds,
                                                  its archive into OUT (split under 16 MiB), a short table last;
                                                  offline: the host has no network, so nothing is fetched, and
                                                  QualX runs back home on the archive's event logs (`qualify`)
    python3 gpu_host.py narrow OUT                the second command, if the first failed: one GPU workload with
                                                  CUDA's modules loaded eagerly (errors surface at load time)

Everything lives under $PREPBENCH_HOST_HOME (default ~/prepbench-host): kit/, stage/, suite/, runs/. The Python
that installs and runs the suite is $PREPBENCH_HOST_PYTHON, else /opt/torch/.venv/bin/python3 where it exists
(the host's own environment, whose numpy, pandas, pyarrow, jinja2 and grpcio a --host-packages bundle reuses),
else this one.
"""

import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
HOME = Path(os.environ.get("PREPBENCH_HOST_HOME") or Path.home() / "prepbench-host")
PIECE = 15 << 20  # what comes back from OUT: files under 16 MiB
MAX_FILES = 8
HOST_PYTHON_DEFAULT = Path("/opt/torch/.venv/bin/python3")


def host_python() -> str:
    chosen = os.environ.get("PREPBENCH_HOST_PYTHON")
    if chosen:
        return chosen
    return str(HOST_PYTHON_DEFAULT) if HOST_PYTHON_DEFAULT.is_file() else sys.executable


def _out(command: list[str], timeout: float = 60) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        return (done.stdout or done.stderr).strip()
    except (OSError, subprocess.SubprocessError) as err:
        return f"unavailable ({err})"


def _table(rows: list[tuple[str, str]]) -> None:
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key.ljust(width)}  {value}")


def preflight() -> int:
    python = host_python()
    gpus = _out(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,compute_cap", "--format=csv,noheader"])
    cuda = next((line.split("CUDA Version:")[1].split()[0] for line in _out(["nvidia-smi"]).splitlines()
                 if "CUDA Version:" in line), "unknown")
    probe = ("import json, sys, importlib.metadata as m\nfound = {'python': sys.version.split()[0]}\n"
             "for n in ('numpy', 'pandas', 'pyarrow', 'jinja2', 'grpcio', 'nvidia-ml-py', 'torch', 'cupy-cuda13x', 'pip'):\n"
             "    try:\n        found[n] = m.version(n)\n    except m.PackageNotFoundError:\n        found[n] = None\n"
             "try:\n    import pynvml\n    pynvml.nvmlInit()\n    h = pynvml.nvmlDeviceGetHandleByIndex(0)\n"
             "    found['gpm'] = bool(pynvml.nvmlGpmQueryDeviceSupport(h).isSupportedDevice)\n"
             "except Exception as err:\n    found['gpm'] = f'no: {err}'\nprint(json.dumps(found))")
    try:
        packages = json.loads(_out([python, "-c", probe]))
    except ValueError:
        packages = {}
    HOME.mkdir(parents=True, exist_ok=True)
    disk = shutil.disk_usage(HOME)
    memory = next((line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal")), "?")
    rows = [("gpu", gpus), ("cuda (driver)", cuda), ("python", f"{python} {packages.get('python', '?')}")]
    rows += [(name, str(packages.get(name))) for name in ("numpy", "pandas", "pyarrow", "jinja2", "grpcio",
                                                          "nvidia-ml-py", "torch", "pip")]
    rows += [("gpm", str(packages.get("gpm"))), ("free disk", f"{disk.free / 2**30:.0f} GiB in {HOME}"),
             ("memory (MemTotal)", f"{int(memory) / 2**20:.0f} GiB now (it grows as it is used)" if memory.isdigit() else "?"),
             ("cores", str(os.cpu_count()))]
    _table(rows)
    return 0 if "unavailable" not in gpus else 1


def stage(kit: Path, parts: list[Path]) -> int:
    target = HOME / "kit"
    if not (target / "MANIFEST.json").is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(kit, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("prepbench.tar.zst*"))
    return subprocess.run([sys.executable, str(target / "install.py"), "--stage", str(HOME / "stage"),
                           *map(str, parts)]).returncode


def install() -> int:
    suite = HOME / "suite"
    if (suite / ".venv" / "bin" / "python").is_file():
        print(f"already installed in {suite}")
        return 0
    began = time.monotonic()
    done = subprocess.run([host_python(), str(HOME / "kit" / "install.py"), str(suite), "--from", str(HOME / "stage")])
    if done.returncode != 0:
        return done.returncode
    java = suite / "jre" / "bin" / "java"
    if java.is_file():
        missing = [line.strip() for target in (java, *sorted((suite / "jre" / "lib").rglob("libjvm.so")))
                   for line in _out(["ldd", str(target)]).splitlines() if "not found" in line]
        print("ldd of the bundled Java: " + ("every library found" if not missing else "MISSING " + "; ".join(missing)))
    print(f"installed in {time.monotonic() - began:.0f} s")
    return 0


def _bench(out: Path, arguments: list[str], env: dict) -> int:
    """Run bench from the installed suite, bring its archive back through OUT (split under 16 MiB) and print
    the start of its summary; the archive is brought back however the run ended."""
    suite, runs = HOME / "suite", HOME / "runs"
    before = set(runs.glob("*.tar.gz")) if runs.is_dir() else set()
    done = subprocess.run([str(suite / ".venv" / "bin" / "python"), "-m", "harness", "bench", *arguments,
                           "--results-dir", str(runs)], cwd=suite, env={**os.environ, **env})
    archives = sorted(set(runs.glob("*.tar.gz")) - before) if runs.is_dir() else []
    if not archives:
        print(f"bench exited with status {done.returncode} and wrote no archive")
        return done.returncode or 1
    sent = bring_back(archives[-1], out)
    print(f"archive {archives[-1].name} ({archives[-1].stat().st_size / 2**20:.1f} MiB) in OUT as "
          f"{', '.join(p.name for p in sent)}")
    with tarfile.open(archives[-1]) as tar:
        summary = next((m for m in tar.getmembers() if m.name.endswith("/summary.txt")), None)
        text = tar.extractfile(summary).read().decode() if summary else "no summary in the archive"
    print("\n".join(text.splitlines()[:40]))
    return done.returncode


def bring_back(archive: Path, out: Path) -> list[Path]:
    """The archive into OUT, in pieces of at most PIECE bytes (cat them back together), at most MAX_FILES."""
    out.mkdir(parents=True, exist_ok=True)
    size = archive.stat().st_size
    if size <= PIECE:
        shutil.copy2(archive, out / archive.name)
        return [out / archive.name]
    pieces = []
    with open(archive, "rb") as source:
        while chunk := source.read(PIECE):
            pieces.append(out / f"{archive.name}.{len(pieces):03d}")
            pieces[-1].write_bytes(chunk)
    if len(pieces) > MAX_FILES:
        print(f"the archive is {size / 2**20:.0f} MiB: only {MAX_FILES} pieces of {PIECE >> 20} MiB come back")
    return pieces


def run(out: Path, budget: int, extra: list[str]) -> int:
    return _bench(out, ["--preset", "gpu-check", "--host", "gpu-local", "--offline", "--budget", str(budget), *extra], {})


def narrow(out: Path, budget: int) -> int:
    """One GPU workload at 1e6 under the GPU engine alone, CUDA's modules loaded at start: a library CUDA refuses
    (a pruned fat binary, say) fails at once, with its error, instead of at its first kernel."""
    return _bench(out, ["--preset", "gpu-check", "--host", "gpu-local", "--engines", "gpu", "--workloads",
                        "groupby_sum_mean", "--scales", "1e6", "--offline", "--budget", str(budget)],
                  {"CUDA_MODULE_LOADING": "EAGER"})


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    command, rest = argv[0], argv[1:]
    extra = rest[rest.index("--") + 1:] if "--" in rest else []  # more bench options (a rehearsal narrows the preset)
    rest = rest[:rest.index("--")] if "--" in rest else rest
    budget = int(rest[rest.index("--budget") + 1]) if "--budget" in rest else 300
    if command == "preflight":
        return preflight()
    if command == "stage" and len(rest) >= 2:
        return stage(Path(rest[0]), [Path(p) for p in rest[1:]])
    if command == "install":
        return install()
    if command == "run" and rest:
        return run(Path(rest[0]), budget, extra)
    if command == "narrow" and rest:
        return narrow(Path(rest[0]), budget)
    print(f"unknown command {' '.join(argv)}: see {Path(__file__).name} --help", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
