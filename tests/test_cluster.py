"""Clusters: the suite against a real Spark standalone cluster, a master and two workers on 127.0.0.1.

Workloads run across two executor processes, so shuffles cross processes, and their output must equal
local mode's: through a warm Spark Connect server as the cluster's driver (as bench runs them), and through a
classic driver per process (--no-connect). A worker killed in the middle of a run must end in a correct result (Spark re-ran the lost
tasks) or a failure recorded with its reason, never in a wrong result recorded as ok. Every cluster is
stopped, leaving no process behind, even when a test fails. The cluster's driver runs in a child process
(``cluster_driver.py``): this process already holds the local session.
"""

import dataclasses
import json
import os
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from harness import HarnessError, bench, cli, cluster, data, fingerprint, jars, records, results, services, session, workloads
from harness.config import RunSettings, merge, scale_rows
from harness.standalone import StandaloneCluster
from harness.trial import Trial

from conftest import TINY

ACROSS_WORKERS = ("groupby_sum_mean", "join_big_shuffle_int", "standardize_clip_pandas_udf")  # shuffle, join, Python
KILLED_MID_RUN, KILL_SCALE = "join_big_shuffle_int", "1e6"
DRIVER = Path(__file__).with_name("cluster_driver.py")
# The tests check results, not speed: the quick compiler alone spares these short-lived JVMs most JIT work. At the
# tiny scale adaptive execution coalesces a shuffle into one reduce task, which the executor holding the map output
# takes: the other one then reads no shuffle block (the tests check that both do). Several reduce tasks, no
# locality wait: both executors read.
TEST_CONF = (*(f"spark.{side}.extraJavaOptions=-XX:TieredStopAtLevel=1" for side in ("driver", "executor")),
             "spark.sql.adaptive.coalescePartitions.enabled=false", "spark.locality.wait=0s")


pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def standalone(tmp_path_factory):
    with StandaloneCluster(workers=2, cores=1, memory="2g", root=tmp_path_factory.mktemp("standalone")) as running:
        yield running
    assert running.leftovers() == []


@pytest.fixture(scope="module")
def data_uri(tmp_path_factory):
    """Datasets under a file:// URI: written by the generator through pyarrow, read by every executor."""
    return tmp_path_factory.mktemp("cluster-data").as_uri()


def cluster_settings(master_url, data_dir, results_dir) -> RunSettings:
    return RunSettings(host="standalone", engines=("cpu",), overrides=(f"spark.master={master_url}", *TEST_CONF),
                       data_dir=data_dir, results_dir=results_dir)


def ensure_tables(names, scale, data_dir):
    for table in {t for name in names for t in workloads.get(name).tables}:
        data.ensure(table, scale_rows(scale), RunSettings.seed, data_dir, progress=None)


def drive(settings: RunSettings, scale: str, names, *extra: str) -> tuple[Path, dict]:
    """Run the workloads in a driver process of their own; returns its run directory and its report."""
    run_dir = records.new_run(settings)
    done = subprocess.run([sys.executable, str(DRIVER), str(run_dir), scale, *names, *extra],
                          env={**os.environ, **settings.to_env(), "PREPBENCH_SESSION": "classic", "PREPBENCH_SERVICES": ""},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    return run_dir, json.loads(done.stdout.strip().splitlines()[-1])


def local_fingerprint(spark, data_dir, name, scale) -> dict:
    """The same workload's output in local mode (the CPU engine's Spark Connect server), from the same files."""
    workload = workloads.get(name)
    tables = {t: spark.read.parquet(data.table_path(t, scale_rows(scale), RunSettings.seed, data_dir))
              for t in workload.tables}
    with workloads.sql_settings(spark, workload):
        return fingerprint.spark_fingerprint(workload.build(tables))


def read(run_dir, name, scale):
    path = results.record_path(run_dir, "cpu", name, scale)
    return results.Record.from_json(json.loads(path.read_text()), path.name)


def routable_address() -> str | None:
    """An address of this machine other than loopback, if it has one (executors on other hosts would reach it)."""
    shown = subprocess.run(["ip", "-4", "-o", "addr", "show", "scope", "global"], capture_output=True, text=True).stdout
    found = [line.split()[3].split("/")[0] for line in shown.splitlines() if len(line.split()) > 3]
    return found[0] if found else None


def harness_on_executors(spark) -> list[str]:
    """Where the executors' Python workers import the harness from (the shipped code archive, or not)."""
    from pyspark.sql.functions import udf

    @udf("string")
    def location(_):
        import harness

        return harness.__file__

    return sorted({row[0] for row in spark.range(8).repartition(8).select(location("id")).collect()})


def test_a_warm_connect_driver_runs_workloads_across_two_workers_equal_to_local_mode(standalone, data_uri, spark,
                                                                                    tmp_path, monkeypatch):
    """A Spark Connect server started as bench starts it is the cluster's driver, bound to a routable address of
    this machine (its gRPC endpoint and UI stay on loopback behind the run's token): benchmark processes are its
    clients, as on a real cluster. Where the machine has no address but loopback, the driver binds there and the
    test proves the rest (a warm driver on a cluster, outputs equal to local mode) but not the routing."""
    driver = routable_address()
    ensure_tables(ACROSS_WORKERS, TINY, data_uri)
    settings = dataclasses.replace(cluster_settings(standalone.url, data_uri, tmp_path), session="connect",
                                   overrides=(f"spark.master={standalone.url}", *TEST_CONF,
                                              *([f"spark.driver.host={driver}"] if driver else [])))
    with bench.started_services(settings, tmp_path / "logs", progress=lambda m: None) as addresses:
        monkeypatch.setenv(services.SERVICES_ENV, json.dumps(addresses))
        run_dir = records.new_run(settings)
        for name in ACROSS_WORKERS:
            Trial(run_dir, "cpu", name, TINY, settings).finish()
        from harness.backends import Engine

        engine = Engine.of("cpu", settings)  # a benchmark process's session, as the backend opens it
        client = engine.backend_module.open(engine, engine.backend_module.preflight(engine), settings, addresses["cpu"])
        imported_from = harness_on_executors(client.spark)
        from harness.backends import spark as spark_backend

        spark_backend.close_all()
    session.activate(spark)
    for name in ACROSS_WORKERS:
        record = read(run_dir, name, TINY)
        assert record.status == "ok" and record.session["mode"] == "connect", record.reason
        assert record.config["spark.master"] == {"value": standalone.url, "source": "command line",
                                                 "replaced": ["conf/base.conf:7", "conf/hosts/standalone.conf:5"]}
        expected = local_fingerprint(spark, data_uri, name, TINY)
        assert fingerprint.compare(expected, record.fingerprint, workloads.get(name).tolerance) == [], name
    executors = [e for e in record.executors if e["id"] != "driver"]
    assert len(executors) == 2 and all(e["active"] for e in executors)
    # Both did work and both read shuffle blocks, so blocks crossed processes: a tiny table is one row group, whose
    # one map task may run on either executor (all of them on one, about one run in four), and every reduce task
    # reads every map output; the other executor then read only remote blocks.
    assert all(e["tasks"] > 0 and e["shuffle_read_bytes"] > 0 for e in executors), executors
    assert sum(e["shuffle_write_bytes"] for e in executors) > 0
    driver_entry = next(e for e in record.executors if e["id"] == "driver")
    assert driver_entry["address"].startswith(f"{driver or '127.0.0.1'}:")  # where executors reached the driver
    # The UDF's module came from the code archive the session added as an artifact, not from this checkout.
    assert imported_from and all(".zip/harness/" in p for p in imported_from)


def test_a_worker_killed_mid_run_is_recovered_or_recorded_as_failed(standalone, data_uri, spark, tmp_path):
    """Through a classic driver (--no-connect), on the module's cluster, last: one of its workers is killed."""
    ensure_tables([KILLED_MID_RUN], KILL_SCALE, data_uri)
    worker = standalone.worker_daemons[1].process.pid  # its process group: the worker and its executors
    run_dir, report = drive(cluster_settings(standalone.url, data_uri, tmp_path), KILL_SCALE, [KILLED_MID_RUN],
                            "--kill-worker", str(worker))
    assert report["kill"]["busy_executors"], "the worker was not killed while both executors worked"
    record = read(run_dir, KILLED_MID_RUN, KILL_SCALE)
    assert record.status in ("ok", "failed")
    if record.status == "failed":
        assert record.reason
    else:  # Spark re-ran the lost tasks on the other worker: the output must be whole
        lost = [e for e in record.executors if not e["active"]]
        assert len(lost) == 1 and lost[0]["id"] != "driver"
        expected = local_fingerprint(spark, data_uri, KILLED_MID_RUN, KILL_SCALE)
        assert fingerprint.compare(expected, record.fingerprint, fingerprint.Tolerance()) == []


def test_the_cluster_stops_even_when_the_test_fails(tmp_path):
    with pytest.raises(RuntimeError, match="the test failed"):
        with StandaloneCluster(workers=1, root=tmp_path) as running:
            assert len(running.leftovers()) == 2  # the master and the worker
            raise RuntimeError("the test failed")
    assert running.leftovers() == []


# ---------------------------------------------------------------------------------------------- no JVM needed


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
    monkeypatch.delenv("RAPIDS_PLUGIN_JAR", raising=False)
    jar = jars.find("rapids")
    stand_in = {"index": 0, "name": "stand-in H100", "driver": "570", "cuda_driver_version": 12080,
                "compute_capability": "90"}
    monkeypatch.setattr(session.gpu, "probe", lambda: ([stand_in], None))
    installed = (f"spark.master=spark://127.0.0.1:{listening}", f"spark.jars=local://{jar}")
    applied = session.preflight("gpu", dataclasses.replace(settings, overrides=installed).spark_conf("gpu"))
    assert applied["spark.jars"].value == f"local://{jar}"  # executors load it from their own disk
