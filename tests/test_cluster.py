"""Clusters: the master and executor layout, checked before any JVM; what a cluster session ships."""

import dataclasses
import socket
import sys
import zipfile
from pathlib import Path

import pytest

from harness import HarnessError, cli, cluster, plugin, session
from harness.config import merge


@pytest.fixture
def listening():
    """A port something listens on, standing in for a reachable master."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server.getsockname()[1]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_layout_options_are_command_line_overrides(capsys):
    assert cli.main(["config", "--host", "standalone", "--master", "spark://10.1.2.3:7077", "--executors", "4",
                     "--executor-cores", "3", "--executor-memory", "6g", "--executor-gpus", "1"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if not line.startswith("#")}
    assert "spark://10.1.2.3:7077    # command line (replaces conf/base.conf:7, conf/hosts/standalone.conf:5)" \
        in lines["spark.master"]
    for key, value in (("spark.executor.instances", "4"), ("spark.executor.cores", "3"),
                       ("spark.executor.memory", "6g"), ("spark.executor.resource.gpu.amount", "1")):
        assert lines[key].split()[1] == value and "# command line" in lines[key]
    assert lines["spark.cores.max"].split()[1] == "12"  # standalone: executors x cores
    assert lines["spark.task.resource.gpu.amount"].split()[1] == "0.333333"


def test_every_host_profile_merges_for_every_engine():
    from harness.config import available, engines

    assert {"standalone", "gpu-standalone", "gpu-yarn", "gpu-k8s"} <= set(available("hosts"))
    for host in available("hosts"):
        for engine in engines():
            merge(engine, host)
    assert merge("gpu", "gpu-yarn")["spark.executor.resource.gpu.discoveryScript"].value == "./gpu-discovery.sh"
    assert merge("gpu", "gpu-yarn")["spark.files"].value.endswith("/conf/gpu-discovery.sh")


def test_an_unreachable_master_is_refused_before_any_jvm(settings, tmp_path):
    port = closed_port()
    conf = dataclasses.replace(settings, overrides=(f"spark.master=spark://127.0.0.1:{port}",)).spark_conf("cpu")
    with pytest.raises(HarnessError, match=rf"cannot reach the Spark master spark://127.0.0.1:{port} \(command line\)"
                                           r": 127.0.0.1:\d+: Connection refused. Start the cluster"):
        session.preflight("cpu", conf)
    with pytest.raises(HarnessError, match=rf"cannot reach the Spark master k8s://https://127.0.0.1:{port}"):
        cluster.check_master(merge("cpu", "local", (f"spark.master=k8s://https://127.0.0.1:{port}",)))
    results = tmp_path / "results"
    assert cli.main(["bench", "--engines", "cpu", "--master", f"spark://127.0.0.1:{port}",
                     "--results-dir", str(results)]) == 2
    assert not results.exists()  # refused before the run directory, before asv


@pytest.mark.parametrize("master, message", [
    ("mesos://host:5050", "is not a master Spark knows: use local"),
    ("spark://:7077", "names no host"),
    ("spark://host:port", "'host:port' in spark.master is not HOST:PORT"),
    ("yarn", "neither HADOOP_CONF_DIR nor YARN_CONF_DIR is set"),
])
def test_a_malformed_master_says_what_to_write(master, message, monkeypatch):
    monkeypatch.delenv("HADOOP_CONF_DIR", raising=False)
    monkeypatch.delenv("YARN_CONF_DIR", raising=False)
    with pytest.raises(HarnessError, match=message):
        cluster.check_master(merge("cpu", "local", (f"spark.master={master}",)))


def test_a_cluster_session_ships_code_python_and_driver_address(settings, listening):
    url = f"spark://127.0.0.1:{listening}"
    conf = dataclasses.replace(settings, overrides=(f"spark.master={url}",)).spark_conf("cpu")
    applied = session.preflight("cpu", conf)
    assert applied["spark.master"].value == url
    assert applied["spark.pyspark.python"].value == sys.executable
    assert applied["spark.driver.host"].value == "127.0.0.1"  # executors on loopback reach the driver there
    archive = Path(applied["spark.submit.pyFiles"].value)
    assert applied["spark.submit.pyFiles"].source == session.ADDED_BY_HARNESS
    names = zipfile.ZipFile(archive).namelist()
    assert "harness/workloads/standardize_clip.py" in names and "harness/cluster.py" in names
    assert cluster.code_archive() == archive  # named by content: built once per change of the code


def test_a_packed_environment_for_executors_is_used_as_configured(settings, listening, monkeypatch):
    packed = (f"spark.master=spark://127.0.0.1:{listening}", "spark.archives=hdfs:///envs/prepbench.tar.gz#env",
              "spark.pyspark.python=./env/bin/python")
    applied = session.preflight("cpu", dataclasses.replace(settings, overrides=packed).spark_conf("cpu"))
    assert applied["spark.pyspark.python"].value == "./env/bin/python"
    assert cluster.executor_python(applied) == "./env/bin/python"


def test_local_mode_gets_no_cluster_additions(settings):
    applied = session.preflight("cpu", settings.spark_conf("cpu"))
    assert not {"spark.submit.pyFiles", "spark.pyspark.python", "spark.driver.host"} & set(applied)
    assert cluster.executor_python(applied) == sys.executable


def test_a_plugin_jar_installed_on_every_node_is_not_shipped(settings, listening, monkeypatch):
    monkeypatch.delenv(plugin.JAR_ENV, raising=False)
    jar = plugin.find_jar()
    stand_in = {"index": 0, "name": "stand-in H100", "driver": "570", "cuda_driver_version": 12080,
                "compute_capability": "90"}
    monkeypatch.setattr(session.gpu, "probe", lambda: ([stand_in], None))
    installed = (f"spark.master=spark://127.0.0.1:{listening}", f"spark.jars=local://{jar}")
    applied = session.preflight("gpu", dataclasses.replace(settings, overrides=installed).spark_conf("gpu"))
    assert applied["spark.jars"].value == f"local://{jar}"  # executors load it from their own disk
