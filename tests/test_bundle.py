"""The lean offline bundle, built for real (`--gpu-arch sm_90 --minimal --split 56M`), installed from its parts
(renamed, moved, given in a shuffled order) into a fresh directory with pip's --no-index, and the gpu-check
preset run there on the bundled Java runtime: the CPU engines run, the GPU engine is skipped with its
reason, and plan coverage from the pruned plugin jar equals the unpruned jar's."""

import json
import os
import random
import shutil
import subprocess
import sys
import zipfile

import pytest

from harness import REPO_ROOT, HarnessError, bundle, fatbin, results, versions

pytestmark = [pytest.mark.plugin_jar, pytest.mark.slow, pytest.mark.network]
PART = 56 << 20
CHECKED = "groupby_sum_mean,standardize_clip_pandas_udf"  # a shuffle and a Python UDF, from the preset


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    return bundle.build(tmp_path_factory.mktemp("bundle") / "prepbench-bundle", python, gpu_archs=("sm_90",),
                        minimal=True, split_bytes=PART, level=3, progress=lambda m: None)  # sizes: level 12


@pytest.fixture(scope="module")
def installed(built, tmp_path_factory):
    """Installed from parts moved elsewhere under other names, given in a shuffled order."""
    root = tmp_path_factory.mktemp("offline")
    shutil.copytree(built, root / "bundle", ignore=shutil.ignore_patterns(f"{bundle.PAYLOAD}*"))
    parts = [built / p["name"] for p in json.loads((built / bundle.MANIFEST).read_text())["parts"]]
    (root / "carried").mkdir()
    moved = [shutil.copy(part, root / "carried" / f"piece-{i}") for i, part in enumerate(parts)]
    random.Random(7).shuffle(moved)
    env = _offline_env(root)
    done = subprocess.run([str(root / "bundle" / "install.sh"), str(root / "suite"), *map(str, moved)], env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return root, env


def _offline_env(root):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAVA_HOME", "RAPIDS_", "COMET_", "VIRTUAL_ENV"))}
    return {**env, "XDG_CACHE_HOME": str(root / "cache"), "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": ""}


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
    listed = {line.split("  ", 1)[1] for line in (built / "SHA256SUMS").read_text().splitlines()}
    assert {"install.sh", "install.py", bundle.MANIFEST} | {p["name"] for p in manifest["parts"]} <= listed
    assert not built.with_name(built.name + ".partial").exists()


@pytest.fixture(scope="module")
def preset_run(installed, tmp_path_factory):
    root, env = installed
    suite, work = root / "suite", tmp_path_factory.mktemp("preset")
    done = subprocess.run([str(suite / ".venv" / "bin" / "python"), "-m", "harness", "bench", "--preset", "gpu-check",
                           "--scales", "1e4", "--workloads", CHECKED, "--results-dir", str(work / "runs")],
                          cwd=suite, env={**env, "PREPBENCH_DATA_DIR": str(work / "data")}, capture_output=True,
                          text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return done, results.latest_run(work / "runs")


def test_the_installed_suite_runs_the_gpu_check_preset_on_the_bundled_java(installed, preset_run):
    root, _ = installed
    suite = root / "suite"
    assert (suite / "jre" / "bin" / "java").is_file() and not (suite / ".bundle" / "wheels").exists()
    done, run_dir = preset_run
    assert "smoke: comet ran its aggregate on the Comet" in done.stdout
    run = results.load(run_dir)
    status = {(r.workload, r.engine): r for r in run.records}
    for name in CHECKED.split(","):
        assert status[(name, "cpu")].status == status[(name, "comet")].status == "ok"
        assert status[(name, "gpu")].status == "skipped" and status[(name, "gpu")].reason
        assert len(status[(name, "cpu")].samples_s) == 2  # the preset's repeats
    environment = json.loads((run_dir / "run.json").read_text())["environment"]
    assert environment["env"]["JAVA_HOME"] == str(suite / "jre")
    archive = run_dir.with_name(run_dir.name + ".tar.gz")
    assert archive.is_file() and archive.stat().st_size < 16 << 20 and str(archive) in done.stdout


def test_plan_coverage_from_the_pruned_jar_equals_the_unpruned_jars(preset_run, installed, tmp_path, settings):
    _, run_dir = preset_run
    root, _ = installed
    out = tmp_path / "whole.json"
    done = subprocess.run([sys.executable, "-m", "harness", "coverage", "--workloads", CHECKED, "--scale", "1e4",
                           "--out", str(out)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "PREPBENCH_DATA_DIR": str(settings.data_dir)})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    figures = lambda found: {n: (w["on_gpu"], w["on_cpu"], w["fraction"]) for n, w in found["workloads"].items()}
    pruned = figures(json.loads((run_dir / results.COVERAGE_FILE).read_text()))
    assert pruned == figures(json.loads(out.read_text())) and set(pruned) == set(CHECKED.split(","))
    with zipfile.ZipFile(root / "cache" / "prepbench" / "jars" / versions.pairing().rapids_pin.file_name) as jar:
        assert fatbin.MANIFEST in jar.namelist()  # the installed run used the pruned jar


def test_a_damaged_part_is_refused_before_anything_is_written(built, tmp_path):
    damaged = tmp_path / "damaged"
    shutil.copytree(built, damaged)
    part = damaged / json.loads((built / bundle.MANIFEST).read_text())["parts"][1]["name"]
    data = bytearray(part.read_bytes())
    data[1000] ^= 0xFF
    part.write_bytes(bytes(data))
    done = subprocess.run([str(damaged / "install.sh"), str(tmp_path / "suite")], capture_output=True, text=True)
    assert done.returncode == 1 and f"bundle damaged: part {part.name}" in done.stderr
    assert not (tmp_path / "suite").exists()


def test_an_existing_output_is_never_overwritten(built):
    with pytest.raises(HarnessError, match="exists: remove it"):
        bundle.build(built, "3.11", progress=lambda m: None)
