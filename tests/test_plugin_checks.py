"""Checks before the JVM: the real jar's shims, Scala, CUDA and GPU architecture; the shuffle manager class."""

import subprocess
import sys

import pytest

from harness import REPO_ROOT, EngineUnavailable, plugin, session
from harness.config import merge

H100 = {"index": 0, "name": "NVIDIA H100", "driver": "570.86", "cuda_driver_version": 12080, "compute_capability": "90"}


@pytest.fixture(scope="module")
def jar():
    return plugin.find_jar()


def test_the_real_jar_describes_itself(jar):
    facts = plugin.jar_facts(jar)
    assert facts.version == "26.08.1" and facts.scala == "2.13" and facts.cuda_major == 12
    assert "spark420" in facts.shims and "90" in facts.gpu_architectures


def test_the_pinned_pair_passes_on_an_h100_like_host(jar):
    plugin.check_jar(jar, "4.2.0", [H100])


def test_an_unsupported_spark_version_is_named_with_what_is_supported(jar):
    with pytest.raises(EngineUnavailable, match=r"does not support Spark 4\.3\.0: its shims cover .*4\.2\.0"):
        plugin.check_jar(jar, "4.3.0", [])


def test_a_scala_mismatch_is_refused(jar, monkeypatch):
    monkeypatch.setattr(plugin, "installed_scala", lambda: "2.12")
    with pytest.raises(EngineUnavailable, match=r"built for Scala 2\.13 but PySpark 4\.2\.0 uses Scala 2\.12"):
        plugin.check_jar(jar, "4.2.0", [])


def test_an_old_driver_and_an_unsupported_gpu_are_refused(jar):
    with pytest.raises(EngineUnavailable, match=r"needs CUDA 12 but the driver on this host supports CUDA 11"):
        plugin.check_jar(jar, "4.2.0", [{**H100, "cuda_driver_version": 11080}])
    with pytest.raises(EngineUnavailable, match=r"compute capability 60\) is not among the architectures"):
        plugin.check_jar(jar, "4.2.0", [{**H100, "name": "Tesla P100", "compute_capability": "60"}])


def test_installed_pyspark_uses_scala_2_13():
    assert plugin.installed_scala() == "2.13"


def test_the_shuffle_manager_class_is_derived_from_the_spark_version(settings, monkeypatch, jar):
    conf = merge("gpu-rapids-shuffle")
    assert conf["spark.shuffle.manager"].value == "com.nvidia.spark.rapids.spark420.RapidsShuffleManager"
    with pytest.raises(EngineUnavailable, match=r"must be com\.nvidia\.spark\.rapids\.spark420\.RapidsShuffleManager"):
        plugin.check_shuffle_manager("com.nvidia.spark.rapids.spark358.RapidsShuffleManager")
    monkeypatch.setattr(session.gpu, "probe", lambda: ([H100], None))
    wrong = merge("gpu-rapids-shuffle", "local", ("spark.shuffle.manager=com.nvidia.spark.rapids.spark358.RapidsShuffleManager",))
    with pytest.raises(EngineUnavailable, match="spark358"):
        session.preflight("gpu-rapids-shuffle", wrong)


def test_a_jar_named_in_spark_jars_is_used(tmp_path, monkeypatch):
    monkeypatch.delenv(plugin.JAR_ENV, raising=False)
    mine = tmp_path / "rapids-4-spark_2.13-26.08.1.jar"
    mine.write_bytes(b"x")
    assert plugin.find_jar(f"/other/thing.jar,{mine}") == mine
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty"))
    with pytest.raises(EngineUnavailable, match=r"spark\.jars entry /nowhere/rapids-4-spark.jar \(no such file\)"):
        plugin.find_jar("/nowhere/rapids-4-spark.jar")


def test_doctor_explains_why_the_gpu_engine_cannot_run_here():
    done = subprocess.run([sys.executable, "-m", "harness", "doctor"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert done.returncode == 1, done.stdout
    assert "engine cpu: can run here" in done.stdout
    assert "engine gpu: cannot run here: the 'gpu' engine runs the RAPIDS Accelerator, which needs an NVIDIA GPU" in done.stdout
    assert "RAPIDS 26.08.1, Scala 2.13, CUDA 12, supports Spark 4.2.0" in done.stdout
