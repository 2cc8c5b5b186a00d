"""The offline bundle, built for real and installed with pip's --no-index (no network) into a fresh directory."""

import os
import shutil
import subprocess

import pytest

from harness import REPO_ROOT, HarnessError, bundle, plugin


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    plugin.find_jar()  # `tox -e test` fetches it first
    return bundle.build(tmp_path_factory.mktemp("bundle") / "prepbench-bundle", "3.11", progress=lambda m: None)


def test_the_bundle_holds_source_wheels_jar_and_checksums(built):
    wheels = {p.name.split("-")[0].lower() for p in (built / "wheels").iterdir()}
    assert {"pyspark", "pyarrow", "pandas", "numpy", "asv", "nvidia_ml_py", "py4j", "pytest", "setuptools"} <= wheels
    assert (built / "jars" / plugin.pairing().jar_name).is_file()
    listed = {line.split("  ", 1)[1] for line in (built / "SHA256SUMS").read_text().splitlines()}
    assert {"install.sh", "prepbench-src.tar.gz", f"jars/{plugin.pairing().jar_name}"} <= listed
    assert not built.with_name(built.name + ".partial").exists()


def test_it_installs_with_no_index_and_the_installed_suite_runs(built, tmp_path):
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "PIP_FIND_LINKS": "", "PIP_NO_INDEX": "1"}
    done = subprocess.run([str(built / "install.sh"), str(tmp_path / "suite")], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    doctor = subprocess.run([str(tmp_path / "suite" / ".venv" / "bin" / "python"), "-m", "harness", "doctor"],
                            cwd=tmp_path / "suite", env=env, capture_output=True, text=True)
    assert "engine cpu: can run here" in doctor.stdout, doctor.stdout + doctor.stderr
    assert f"jar {tmp_path / 'cache'}/prepbench/jars/{plugin.pairing().jar_name}" in doctor.stdout


def test_a_damaged_bundle_is_refused(built, tmp_path):
    damaged = tmp_path / "damaged"
    shutil.copytree(built, damaged, copy_function=os.link)
    wheel = next((damaged / "wheels").glob("pytest-*.whl"))
    data = wheel.read_bytes()
    wheel.unlink()  # a fresh file: the hard-linked original stays intact
    wheel.write_bytes(data[:-10] + b"0123456789")
    done = subprocess.run([str(damaged / "install.sh"), str(tmp_path / "suite")], capture_output=True, text=True)
    assert done.returncode == 1 and "bundle damaged" in done.stderr
    assert not (tmp_path / "suite" / ".venv").exists()


def test_an_existing_output_is_never_overwritten(built):
    with pytest.raises(HarnessError, match="exists: remove it"):
        bundle.build(built, "3.11", progress=lambda m: None)
