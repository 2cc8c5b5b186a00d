"""The GPU host's run, rehearsed for real: the lean bundle built once for the host's Python 3.12 with its own
numpy, pandas, pyarrow, jinja2 and grpcio (`--gpu-arch sm_90 --minimal --host-packages --split`), its parts
staged one call at a time, and the calls `rehearsal.calls` gives run against a fresh directory standing in for
the host, with a Python 3.12 virtual environment as its Python (so the suite's venv is a venv inside a venv)
and the channel's limits enforced: the install, the gpu-check preset within its budget on the bundled Java,
the run's archive back through $OUT. On this host the GPU engine is skipped with its reason; the CPU engines run;
plan coverage from the pruned plugin jar equals the unpruned jar's. The bundle's build and its staged parts are
tested with the others; the rehearsal itself (marked `rehearsal`: about two minutes on this machine, alone) is the
command to run before a GPU session, `python3 -m tox -e rehearse`, and is left out of `tox -e test`."""

import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from harness import REPO_ROOT, HarnessError, bundle, fatbin, rehearsal, versions

pytestmark = [pytest.mark.plugin_jar, pytest.mark.slow, pytest.mark.network]
PART = 40 << 20
HOST_PYTHON_VERSION = "3.12"
CHECKED = "standardize_clip_pandas_udf"  # from the preset: Python workers on the host's own pandas and pyarrow
NARROWED = ("--scales", "1e4", "--workloads", CHECKED)
HOST_PACKAGES = ["numpy==2.2.6", "pandas==2.2.3", "pyarrow==23.0.1", "jinja2==3.1.5", "grpcio==1.76.0"]  # not the pins


@pytest.fixture(scope="module")
def host_python(tmp_path_factory):
    """A Python 3.12 virtual environment with the packages a GPU host's own environment has (other versions than
    the suite's pins, inside the ranges), made once per machine: the stand-in for /opt/torch/.venv."""
    base = next((str(p) for p in sorted(Path.home().glob(f".pyenv/versions/{HOST_PYTHON_VERSION}.*/bin/python3"))),
                None) or shutil.which(f"python{HOST_PYTHON_VERSION}")
    if base is None:
        pytest.skip(f"no Python {HOST_PYTHON_VERSION} here to stand in for the GPU host's")
    from harness.jars import cache_dir

    venv = cache_dir() / "rehearsal" / f"host-python-{HOST_PYTHON_VERSION}-{hashlib.sha256(' '.join(HOST_PACKAGES).encode()).hexdigest()[:12]}"
    python = venv / "bin" / "python3"
    if not python.is_file():
        subprocess.run([base, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *HOST_PACKAGES], check=True)
    return str(python)


@pytest.fixture(scope="module")
def built():
    out = REPO_ROOT / ".bundle" / f"test-{os.getpid()}"
    shutil.rmtree(out, ignore_errors=True)
    found = bundle.build(out, HOST_PYTHON_VERSION, gpu_archs=("sm_90",), minimal=True, split_bytes=PART, level=3,
                         host_packages=tuple(bundle.HOST_PACKAGES), progress=lambda m: None)  # sizes: level 12
    yield found
    shutil.rmtree(found, ignore_errors=True)


def test_the_parts_are_small_and_the_manifest_says_what_was_removed(built):
    manifest = json.loads((built / bundle.MANIFEST).read_text())
    assert len(manifest["parts"]) > 1 and all(p["bytes"] <= PART for p in manifest["parts"])
    assert all(p["holds_about"] for p in manifest["parts"])
    removed = manifest["removed"]
    assert removed["rapids_jar"]["shim"] == versions.pairing().shim and removed["rapids_jar"]["keep_archs"] == ["sm_90"]
    assert any(name.startswith("rocksdbjni-") for name in removed["spark_jars"])
    assert not any(name.startswith(("spark-core", "spark-connect", "spark-mllib")) for name in removed["spark_jars"])
    assert "java.se" in removed["java_runtime"]["modules"]
    assert any("linux/aarch64" in name for name in removed["comet_jar"]["entries_removed"])
    left = {name.split("-")[0].lower() for name in removed["host_packages"]}
    assert {"numpy", "pandas", "pyarrow", "jinja2", "grpcio"} <= left  # the host's own are used
    assert set(manifest["host_packages"]) == set(bundle.HOST_PACKAGES)
    listed = {line.split("  ", 1)[1] for line in (built / "SHA256SUMS").read_text().splitlines()}
    assert {"install.sh", "install.py", "gpu_host.py", bundle.MANIFEST} | {p["name"] for p in manifest["parts"]} <= listed


def test_parts_are_staged_as_they_arrive_in_any_order_and_a_damaged_one_is_refused(built, tmp_path):
    manifest = json.loads((built / bundle.MANIFEST).read_text())
    arrived = []
    for i, part in enumerate(manifest["parts"]):  # each arrives under another name, in its own step
        arrived.append(tmp_path / f"incoming-{i}" / "piece")
        arrived[-1].parent.mkdir()
        shutil.copy(built / part["name"], arrived[-1])
    random.Random(7).shuffle(arrived)
    damaged = tmp_path / "damaged"
    data = bytearray(arrived[0].read_bytes())
    data[1000] ^= 0xFF
    damaged.write_bytes(bytes(data))
    stage = tmp_path / "stage"
    refused = subprocess.run([str(built / "install.sh"), "--stage", str(stage), str(damaged)], capture_output=True,
                             text=True)
    assert refused.returncode == 1 and "matches no part of this bundle" in refused.stderr and "send it again" in refused.stderr
    for k, piece in enumerate(arrived, start=1):
        step = subprocess.run([str(built / "install.sh"), "--stage", str(stage), str(piece)], capture_output=True,
                              text=True, check=True)
        assert step.stdout.startswith(f"{k}/{len(arrived)} ") and " sha256 " in step.stdout and not piece.exists()
    assert "all" in step.stdout and f"--from {stage}" in step.stdout
    assert sorted(p.name for p in stage.iterdir()) == sorted(p["name"] for p in manifest["parts"])
    kit = tmp_path / "kit"  # the bundle's small files without its parts: given only the damaged one
    shutil.copytree(built, kit, ignore=shutil.ignore_patterns(f"{bundle.PAYLOAD}*"))
    done = subprocess.run([str(kit / "install.sh"), str(tmp_path / "suite"), str(damaged)], capture_output=True,
                          text=True)  # nothing is written when a part is missing or damaged
    assert done.returncode == 1 and "bundle damaged" in done.stderr and not (tmp_path / "suite").exists()


@pytest.fixture(scope="module")
def rehearsed(built, host_python, tmp_path_factory):
    host = tmp_path_factory.mktemp("gpu-host")
    rows = rehearsal.rehearse(built, host, host_python, budget_s=600, narrowed=NARROWED, progress=lambda m: None)
    return rows, host


@pytest.mark.rehearsal
def test_the_calls_install_and_run_the_preset_within_the_channels_limits(rehearsed, built):
    rows, host = rehearsed
    assert len(rows) == len(json.loads((built / bundle.MANIFEST).read_text())["parts"])
    assert all(r["carried_mib"] <= rehearsal.CARRY_LIMIT >> 20 and r["status"] == 0 for r in rows)
    first, last = (host / "call-1" / "output.txt").read_text(), (host / f"call-{len(rows)}" / "output.txt").read_text()
    assert "free disk" in first and "python" in first and f"1/{len(rows)} " in first
    assert "reused from the host: grpcio 1.76.0, jinja2 3.1.5, numpy 2.2.6, pandas 2.2.3, pyarrow 23.0.1" in last
    assert "ldd of the bundled Java: every library found" in last
    assert "smoke: comet ran its aggregate on the Comet" in last and rows[-1]["back"]


@pytest.mark.rehearsal
def test_the_archive_that_came_back_holds_the_run(rehearsed, tmp_path):
    rows, host = rehearsed
    out = host / f"call-{len(rows)}" / "out"
    pieces = sorted(out.iterdir())
    archive = tmp_path / "run.tar.gz"
    with open(archive, "wb") as whole:  # cat the pieces back together
        for piece in pieces:
            whole.write(piece.read_bytes())
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path, filter="data")
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    from harness import results

    run = results.load(run_dir)
    status = {(r.workload, r.engine): r for r in run.records}
    for name in CHECKED.split(","):
        assert status[(name, "cpu")].status == status[(name, "comet")].status == "ok"
        assert status[(name, "gpu")].status == "skipped" and status[(name, "gpu")].reason
        assert len(status[(name, "cpu")].samples_s) == 2  # the preset's repeats
    environment = json.loads((run_dir / "run.json").read_text())["environment"]
    assert environment["env"]["JAVA_HOME"].endswith("suite/jre")  # the bundled Java
    assert environment["packages"]["numpy"] == "2.2.6" and environment["python"].startswith(HOST_PYTHON_VERSION)
    assert not (run_dir / "outputs").exists() and (run_dir / "logs").is_dir()
    last = (host / f"call-{len(rows)}" / "output.txt").read_text()
    assert "setting up spark-rapids-user-tools" not in last and "is not cached (offline)" in last  # no network there
    assert not (run_dir / "qualification.json").exists() and any((run_dir / "eventlogs" / "cpu").iterdir())
    from harness import qualx

    found = qualx.qualify(run_dir, progress=lambda m: None)  # back home: QualX on the host's CPU event logs
    assert found["state"] == "ok" and all(found["records"][r.name]["speedup"] for r in run.records
                                           if r.engine == "cpu")


@pytest.mark.rehearsal
def test_plan_coverage_from_the_pruned_jar_equals_the_unpruned_jars(rehearsed, tmp_path, settings):
    rows, host = rehearsed
    installed = host / "home" / "prepbench-host"
    (run_dir,) = [p for p in (installed / "runs").iterdir() if p.is_dir()]
    out = tmp_path / "whole.json"
    done = subprocess.run([sys.executable, "-m", "harness", "coverage", "--workloads", CHECKED, "--scale", "1e4",
                           "--out", str(out)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "PREPBENCH_DATA_DIR": str(settings.data_dir)})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    figures = lambda found: {n: (w["on_gpu"], w["on_cpu"], w["fraction"]) for n, w in found["workloads"].items()}
    pruned = figures(json.loads((run_dir / "coverage.json").read_text()))
    assert pruned == figures(json.loads(out.read_text())) and set(pruned) == set(CHECKED.split(","))
    jar = host / "home" / ".cache" / "prepbench" / "jars" / versions.pairing().rapids_pin.file_name
    with zipfile.ZipFile(jar) as opened:
        assert fatbin.MANIFEST in opened.namelist()  # the installed run used the pruned jar


def test_an_existing_output_is_never_overwritten(built):
    with pytest.raises(HarnessError, match="exists: remove it"):
        bundle.build(built, "3.11", progress=lambda m: None)
