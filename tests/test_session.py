"""Spark sessions: what the server and classic sessions are given, Python workers on this interpreter, and the
engines that cannot run refused before any JVM."""

import dataclasses
import socket
import subprocess
import sys

import pytest

from harness import REPO_ROOT, EngineUnavailable, HarnessError, connect, jars, session
from harness.config import merge


def test_the_server_gets_the_merged_configuration_on_loopback(settings):
    applied = session.preflight("cpu", settings.spark_conf("cpu"))
    properties = connect.properties(applied, 1234, 5678, "pbk_test")
    assert properties["spark.master"] == "local[*]" and properties["spark.sql.shuffle.partitions"] == "4"
    assert properties["spark.driver.memory"] == "2g"  # the command line over the host's 8g
    assert properties["spark.connect.grpc.binding.address"] == "127.0.0.1" and properties["spark.ui.port"] == "5678"
    assert "log4j2.properties" in properties["spark.driver.extraJavaOptions"]
    assert properties["spark.redaction.regex"] == session.REDACTION_REGEX  # Spark's UI and event log redact what we do
    assert properties["spark.connect.authenticate.token"] == "pbk_test" and properties["spark.driver.host"] == "127.0.0.1"
    routable = connect.properties({**applied, "spark.driver.host": session.Setting("10.0.0.5", "command line")}, 1, 2, "t")
    assert (routable["spark.driver.host"], routable["spark.driver.bindAddress"]) == ("10.0.0.5", "10.0.0.5")
    assert routable["spark.connect.grpc.binding.address"] == "127.0.0.1"  # the endpoint stays on loopback


def test_python_workers_use_this_interpreter(spark):
    from pyspark.sql.functions import pandas_udf

    @pandas_udf("string")
    def interpreter(ids):
        import sys as worker_sys

        return ids.map(lambda _: worker_sys.executable)

    assert spark.range(2).select(interpreter("id")).first()[0] == sys.executable


@pytest.mark.slow
def test_a_second_engine_in_a_classic_process_is_refused():
    done = subprocess.run([sys.executable, "-c", (
        "from harness import session, config\n"
        "conf = session.preflight('cpu', config.merge('cpu', 'local', ('spark.driver.memory=1g',)))\n"
        "first = session.classic('cpu', conf, monitored=False)\n"
        "assert session.classic('cpu', conf) is first\n"
        "try:\n    session.classic('comet', conf)\nexcept Exception as err:\n    print(err)\n")],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert "already runs the 'cpu' engine; start one process per engine" in done.stdout, done.stderr[-2000:]


def test_gpu_engine_without_the_jar_fails_before_the_jvm(monkeypatch, tmp_path, settings):
    monkeypatch.delenv("RAPIDS_PLUGIN_JAR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(EngineUnavailable) as err:
        session.preflight("gpu", settings.spark_conf("gpu"))
    assert "rapids-4-spark_2.13-26.08.1.jar (not downloaded)" in str(err.value)
    assert "python -m harness fetch-jars" in str(err.value)


@pytest.mark.plugin_jar
def test_gpu_engine_without_a_gpu_says_so(monkeypatch, settings):
    monkeypatch.setenv("RAPIDS_PLUGIN_JAR", str(jars.find("rapids")))
    monkeypatch.setattr(session.gpu, "probe", lambda: ([], "NVML could not start (no driver)"))
    with pytest.raises(EngineUnavailable, match=r"needs an NVIDIA GPU: NVML could not start \(no driver\)"):
        session.preflight("gpu", settings.spark_conf("gpu"))


@pytest.mark.plugin_jar
def test_gpu_engine_with_jar_and_gpu_gets_the_jar_on_its_classpath(monkeypatch, settings):
    jar = jars.find("rapids")
    monkeypatch.setenv("RAPIDS_PLUGIN_JAR", str(jar))
    stand_in = {"index": 0, "name": "stand-in H100", "driver": "570", "cuda_driver_version": 12080,
                "compute_capability": "90"}
    monkeypatch.setattr(session.gpu, "probe", lambda: ([stand_in], None))
    applied = session.preflight("gpu", settings.spark_conf("gpu"))
    assert applied["spark.jars"].value == str(jar)
    assert applied["spark.plugins"].value == "com.nvidia.spark.SQLPlugin"


def test_master_urls_pass_through_unchanged(settings):
    with socket.create_server(("127.0.0.1", 0)) as master:  # preflight refuses a master it cannot reach
        url = f"spark://127.0.0.1:{master.getsockname()[1]}"
        cluster = dataclasses.replace(settings, overrides=(f"spark.master={url}",))
        assert session.preflight("cpu", cluster.spark_conf("cpu"))["spark.master"].value == url


def test_missing_java_is_explained(monkeypatch, tmp_path):
    monkeypatch.setenv("JAVA_HOME", str(tmp_path))
    with pytest.raises(HarnessError, match="Java 17 is needed"):
        session.java_binary()
    assert merge("cpu")  # the configuration itself needs no Java
