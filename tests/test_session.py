"""Sessions: one engine per process, settings from configuration, and the GPU engine refused before any JVM."""

import dataclasses
import os
import socket
import sys

import pytest

from harness import EngineUnavailable, HarnessError, plugin, session


def test_the_cpu_session_follows_the_merged_configuration(cpu_session, spark):
    conf = spark.sparkContext.getConf()
    assert conf.get("spark.master") == "local[*]"
    assert conf.get("spark.sql.shuffle.partitions") == "4"  # command-line layer over the host's 16
    assert conf.get("spark.driver.memory") == "8g"  # host layer
    assert "log4j2.properties" in conf.get("spark.driver.extraJavaOptions")
    assert os.environ["PYSPARK_PYTHON"] == sys.executable
    assert cpu_session.start_seconds > 0


def test_python_workers_use_this_interpreter(spark):
    from pyspark.sql.functions import pandas_udf

    @pandas_udf("string")
    def interpreter(ids):
        import sys as worker_sys

        return ids.map(lambda _: worker_sys.executable)

    assert spark.range(2).select(interpreter("id")).first()[0] == sys.executable


def test_a_second_engine_in_the_same_process_is_refused(cpu_session, settings):
    assert session.start("cpu", settings) is cpu_session
    with pytest.raises(HarnessError, match="already runs the 'cpu' engine; start one process per engine"):
        session.start("gpu", settings)


def test_gpu_engine_without_the_jar_fails_before_the_jvm(monkeypatch, tmp_path, settings):
    monkeypatch.setenv("RAPIDS_PLUGIN_JAR", str(tmp_path / "missing.jar"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(EngineUnavailable) as err:
        session.preflight("gpu", settings.spark_conf("gpu"))
    message = str(err.value)
    assert "RAPIDS_PLUGIN_JAR=" in message and "missing.jar (no such file)" in message
    assert "python -m harness fetch-plugin" in message


def test_gpu_engine_without_a_gpu_says_so(monkeypatch, settings):
    monkeypatch.setenv("RAPIDS_PLUGIN_JAR", str(plugin.find_jar()))
    monkeypatch.setattr(session.gpu, "probe", lambda: ([], "NVML could not start (no driver)"))
    with pytest.raises(EngineUnavailable, match=r"needs an NVIDIA GPU: NVML could not start \(no driver\)"):
        session.preflight("gpu", settings.spark_conf("gpu"))


def test_a_corrupt_jar_is_named_before_the_jvm(monkeypatch, tmp_path, settings):
    jar = tmp_path / "rapids-4-spark_2.13-26.08.1.jar"
    jar.write_bytes(b"half a download")
    monkeypatch.setenv("RAPIDS_PLUGIN_JAR", str(jar))
    with pytest.raises(EngineUnavailable, match=r"is not a usable RAPIDS Accelerator jar .* fetch-plugin"):
        session.preflight("gpu", settings.spark_conf("gpu"))


def test_gpu_engine_with_jar_and_gpu_gets_the_jar_on_its_classpath(monkeypatch, settings):
    jar = plugin.find_jar()
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
