"""Checks before the JVM, on the real jars: the plugin's shims, Scala, CUDA and GPU architecture, its shuffle
manager class; Comet's Spark and Scala versions; a damaged jar; and `doctor`, which runs them all."""

import subprocess
import sys
import zipfile

import pytest

from harness import REPO_ROOT, EngineUnavailable, comet, jars, plugin, session, versions
from harness.config import merge

H100 = {"index": 0, "name": "NVIDIA H100", "driver": "570.86", "cuda_driver_version": 12080, "compute_capability": "90"}
pytestmark = pytest.mark.plugin_jar


@pytest.fixture(scope="module")
def jar():
    return jars.find("rapids")


def test_the_real_jar_describes_itself(jar):
    facts = plugin.jar_facts(jar)
    assert facts.version == "26.08.1" and facts.scala == "2.13" and facts.cuda_major == 12
    assert {"spark413", "spark420"} <= facts.shims and "90" in facts.gpu_architectures


def test_the_pinned_pair_passes_on_an_h100_like_host(jar):
    plugin.check_jar(jar, "4.1.3", [H100])


def test_an_unsupported_spark_version_is_named_with_what_is_supported(jar):
    with pytest.raises(EngineUnavailable, match=r"does not support Spark 4\.3\.0: its shims cover .*4\.1\.3.*4\.2\.0"):
        plugin.check_jar(jar, "4.3.0", [])


def test_a_scala_mismatch_is_refused(jar, monkeypatch):
    monkeypatch.setattr(plugin, "installed_scala", lambda: "2.12")
    with pytest.raises(EngineUnavailable, match=r"built for Scala 2\.13 but PySpark 4\.1\.3 uses Scala 2\.12"):
        plugin.check_jar(jar, "4.1.3", [])


def test_an_old_driver_and_an_unsupported_gpu_are_refused(jar):
    with pytest.raises(EngineUnavailable, match=r"needs CUDA 12 but the driver on this host supports CUDA 11"):
        plugin.check_jar(jar, "4.1.3", [{**H100, "cuda_driver_version": 11080}])
    with pytest.raises(EngineUnavailable, match=r"compute capability 60\) is not among the architectures"):
        plugin.check_jar(jar, "4.1.3", [{**H100, "name": "Tesla P100", "compute_capability": "60"}])


def test_the_shuffle_manager_class_is_derived_from_the_spark_version(monkeypatch, jar):
    conf = merge("gpu-rapids-shuffle")
    assert conf["spark.shuffle.manager"].value == "com.nvidia.spark.rapids.spark413.RapidsShuffleManager"
    with pytest.raises(EngineUnavailable, match=r"must be com\.nvidia\.spark\.rapids\.spark413\.RapidsShuffleManager"):
        plugin.check_shuffle_manager("com.nvidia.spark.rapids.spark358.RapidsShuffleManager")
    monkeypatch.setattr(session.gpu, "probe", lambda: ([H100], None))
    wrong = merge("gpu-rapids-shuffle", "local", ("spark.shuffle.manager=com.nvidia.spark.rapids.spark358.RapidsShuffleManager",))
    with pytest.raises(EngineUnavailable, match="spark358"):
        session.preflight("gpu-rapids-shuffle", wrong)


def test_the_comet_jar_is_checked_against_the_installed_spark():
    real = jars.find("comet")
    facts = comet.check_jar(real, "4.1.3")
    assert (facts.version, facts.spark_minor, facts.scala) == ("1.2.0", "4.1", "2.13")
    assert {"linux/amd64", "linux/aarch64"} <= facts.platforms
    with pytest.raises(EngineUnavailable, match=r"built for Spark 4\.1, but PySpark 4\.2\.0 is installed: use "
                                                r"comet-spark-spark4\.2_2\.13"):
        comet.check_jar(real, "4.2.0")


def test_comet_gets_its_jar_on_both_class_paths(monkeypatch):
    applied = session.preflight("comet", merge("comet"))
    for key in ("spark.driver.extraClassPath", "spark.executor.extraClassPath"):
        assert applied[key].value.endswith(versions.pairing().comet_pin.file_name)
    assert "spark.jars" not in applied  # there, its shuffle manager would fail with IllegalAccessError


@pytest.mark.parametrize("kind, engine", [("rapids", "gpu"), ("comet", "comet")])
def test_a_damaged_jar_is_named_before_the_jvm(monkeypatch, tmp_path, kind, engine):
    damaged = tmp_path / versions.pairing().__getattribute__(f"{kind}_pin").file_name
    damaged.write_bytes(b"half a download")
    monkeypatch.setenv(jars.KINDS[kind].env, str(damaged))
    with pytest.raises(EngineUnavailable, match=r"is not a usable .* jar .*fetch-jars"):
        session.preflight(engine, merge(engine))
    with zipfile.ZipFile(damaged, "w") as archive:
        archive.writestr("hello.txt", "a zip, but no jar of ours")
    with pytest.raises(EngineUnavailable, match=r"is not a (RAPIDS Accelerator|Comet) jar"):
        session.preflight(engine, merge(engine))


@pytest.mark.slow
def test_doctor_explains_why_the_gpu_engines_cannot_run_here():
    done = subprocess.run([sys.executable, "-m", "harness", "doctor"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert done.returncode == 1, done.stdout
    assert "engine cpu (cpu, spark): can run here" in done.stdout
    assert "engine comet (cpu-native, spark): can run here" in done.stdout
    assert "engine pandas (cpu, pandas): can run here" in done.stdout
    assert "engine gpu (gpu, spark): cannot run here: the 'gpu' engine runs the RAPIDS Accelerator, which needs an " \
           "NVIDIA GPU" in done.stdout
    assert "engine cudf (gpu, pandas): cannot run here: the 'cudf' engine needs cudf, which is not installed" in done.stdout
