"""Spark Connect as `bench` uses it: a server per engine, started and stopped with nothing left behind; a
server that dies fails its benchmark with the reason; an interrupted run stops every process; `--remote`
benchmarks an endpoint that the run did not start."""

import gc
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from harness import HarnessError, bench, records, results, services
from harness.config import RunSettings
from harness.trial import Trial

from conftest import TINY


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not open(f"/proc/{pid}/stat").read().split(")")[-1].split()[0] == "Z"


def _processes_naming(text: str) -> list[str]:
    found = subprocess.run(["pgrep", "-af", text], capture_output=True, text=True).stdout.splitlines()
    return [line for line in found if "pgrep" not in line]


def test_a_server_per_engine_is_started_then_stopped_and_a_killed_one_fails_its_benchmark(settings, served, tiny_tables,
                                                                                         tmp_path, monkeypatch):
    """A Comet server of its own (the shared ones serve the other tests), killed: its benchmark fails with the
    reason, the run goes on with the CPU engine's server, and nothing of the killed one is left."""
    chosen = RunSettings(**{**settings.__dict__, "engines": ("comet",)})
    with bench.started_services(chosen, tmp_path / "logs", progress=lambda m: None) as addresses:
        assert set(addresses) == {"comet"} and addresses["comet"]["url"] != served["comet"]["url"]
        pid = addresses["comet"]["pid"]
        assert _alive(pid) and services.port_open(int(addresses["comet"]["url"].rsplit(":", 1)[1]))
        monkeypatch.setenv(services.SERVICES_ENV, json.dumps({**served, **addresses}))
        os.killpg(pid, signal.SIGKILL)  # as if its machine died
        run_dir = records.new_run(RunSettings(**{**settings.__dict__, "engines": ("cpu", "comet")}))
        with pytest.raises(HarnessError, match="did not answer"):
            Trial(run_dir, "comet", "groupby_sum_mean", TINY, chosen)
        record = next(r for r in results.load(run_dir).records if r.engine == "comet")
        assert record.status == "failed" and "Spark Connect server" in record.reason
        assert Trial(run_dir, "cpu", "groupby_sum_mean", TINY, settings).finish().status == "ok"  # the run goes on
    time.sleep(1)
    assert not _alive(pid)
    assert not _processes_naming(str(tmp_path / "logs")), "a server or one of its children outlived the run"


def _bench(args, results_dir, settings, extra_env=None, **popen):
    env = {**os.environ, **(extra_env or {}), "PREPBENCH_DATA_DIR": str(settings.data_dir)}
    env.pop(services.SERVICES_ENV, None)
    return subprocess.Popen([sys.executable, "-m", "harness", "bench", "--smoke", "--results-dir", str(results_dir),
                             "--workloads", "groupby_sum_mean", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True, **popen)


def test_an_interrupted_run_stops_every_process_and_says_so(settings, tiny_tables, tmp_path):
    running = _bench(["--engines", "dask"], tmp_path, settings)  # a Dask cluster: the quickest service to start
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # until asv runs the benchmarks against the started servers
        if list(tmp_path.glob("*/groupby_sum_mean.*.json")):
            break
        time.sleep(0.5)
    run_dir = next(tmp_path.glob("*/"))
    os.kill(running.pid, signal.SIGTERM)
    output, _ = running.communicate(timeout=180)
    assert running.returncode == 130, output[-3000:]
    assert "interrupted; the services are stopped" in output
    assert json.loads((run_dir / "run.json").read_text())["state"] == "interrupted"
    assert "interrupted" in (run_dir / "summary.txt").read_text()
    time.sleep(1)
    assert not _processes_naming(str(run_dir)), "a process of the run outlived it"


@pytest.fixture(scope="module")
def team_dask(tmp_path_factory):
    """A Dask cluster a team runs: a scheduler and two workers on loopback behind TLS; its credentials in files
    only its user reads, named in Dask's configuration (the environment), as a team's client would have them."""
    from distributed import LocalCluster
    from distributed.security import Security

    security = Security.temporary()
    folder = tmp_path_factory.mktemp("dask-tls")
    os.chmod(folder, 0o700)
    files = {}
    for name, value in (("ca", security.tls_ca_file), ("cert", security.tls_client_cert), ("key", security.tls_client_key)):
        files[name] = folder / f"{name}.pem"
        files[name].write_text(value)
        os.chmod(files[name], 0o600)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", protocol="tls",
                      security=security, dashboard_address=None) as cluster:
        yield cluster.scheduler_address, {
            "DASK_DISTRIBUTED__COMM__TLS__CA_FILE": str(files["ca"]),
            "DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT": str(files["cert"]),
            "DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY": str(files["key"]),
            "DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION": "True"}


def test_services_the_run_did_not_start_a_teams_connect_endpoint_and_tls_dask_cluster(settings, served, team_dask,
                                                                                     tmp_path):
    """`--remote` (with the endpoint's token in its URL) and `--dask-scheduler` (a TLS cluster, its credentials in
    Dask's configuration) in one run: nothing is started for either, and only the workload named runs."""
    endpoint, (scheduler, dask_env) = served["cpu"], team_dask
    with_token = f"{endpoint['url']}/;token={endpoint['token']}"  # a team's endpoint takes its token in the URL
    running = _bench(["--engines", "cpu,dask", "--remote", with_token, "--remote-ui", endpoint["ui"],
                      "--dask-scheduler", scheduler, "--bench", r"^workloads\."], tmp_path, settings, extra_env=dask_env)
    output, _ = running.communicate(timeout=600)
    assert running.returncode == 0, output[-3000:]
    assert "starting the" not in output  # no Connect server, no Dask cluster
    run = results.load(results.latest_run(tmp_path))
    assert {r.workload for r in run.records} == {"groupby_sum_mean"}  # --workloads runs only what it names
    cpu = next(r for r in run.records if r.engine == "cpu")
    assert cpu.status == "ok" and cpu.session["mode"] == "remote"
    assert cpu.session["endpoint"].startswith(endpoint["url"]) and endpoint["token"] not in json.dumps(cpu.to_json())
    assert endpoint["token"] not in output and endpoint["token"] not in (run.info.path and open(
        os.path.join(run.info.path, "run.json")).read())
    assert cpu.session["reported"]["spark.master"].startswith("local")  # what the endpoint said about itself
    assert cpu.spark_metrics.get("jobs", 0) >= 1  # read from the endpoint's monitoring API
    assert _alive(endpoint["pid"])  # not ours to stop
    dask = next(r for r in run.records if r.engine == "dask")
    assert dask.status == "ok" and dask.session["mode"] == "existing cluster" and dask.session["endpoint"] == scheduler
    assert dask.session["workers"] == 2 and all(w["threads"] == 1 for w in dask.session["worker_resources"])
    assert not (run.info.path and os.path.exists(os.path.join(run.info.path, "logs", "dask-dask.log")))


def test_a_teams_dask_cluster_whose_workers_cannot_read_the_data_is_refused_in_one_line(settings, team_dask, tmp_path):
    from harness.backends import dask_frames

    scheduler, dask_env = team_dask
    missing = str(tmp_path / "nowhere" / "groupby")
    with pytest.MonkeyPatch.context() as patch:
        for key, value in dask_env.items():
            patch.setenv(key, value)
        import dask

        dask.config.refresh()
        with pytest.raises(HarnessError, match=r"2 worker\(s\) of the Dask cluster cannot read the datasets.*"
                                               r"does not exist there.*--data-dir a shared URI"):
            dask_frames.check_workers_read(dask_frames.existing(scheduler), [missing])
    dask.config.refresh()


def test_the_runs_connect_server_refuses_a_client_without_its_token(served):
    from pyspark.sql import SparkSession

    url = served["cpu"]["url"]
    for wrong in (url, f"{url}/;token={services.new_token()}"):
        with pytest.raises(Exception) as refused:
            SparkSession.builder.remote(wrong).create().range(3).count()
        assert "UNAUTHENTICATED" in str(refused.value) or "token" in str(refused.value).lower(), str(refused.value)[:500]


def test_the_sessions_of_a_local_engines_server_share_its_python_workers(served):
    """Each benchmark process is a session of its own; on a local-mode engine's server they all use one Python
    daemon (Spark's own Connect server would start one per session, about 2 s of imports in each first run)."""
    from pyspark.sql import functions as F

    from harness import session

    address = served["cpu"]
    found = []
    for _ in range(2):
        spark = session.remote(address["url"], local_server=True, token=address["token"])
        daemon = F.udf(lambda _: os.getppid(), "long")  # a Python worker's parent is the daemon that forked it
        try:
            found.append({row[0] for row in spark.range(4).select(daemon("id")).distinct().collect()})
        finally:
            spark.stop()
    assert len(found[0]) == 1 and found[0] == found[1], found


def test_the_runs_dask_cluster_refuses_a_client_without_its_credentials(served):
    from distributed import Client

    from harness.backends import dask_frames

    address = served["dask"]
    assert address["scheduler"].startswith("tls://127.0.0.1:")
    assert "PRIVATE KEY" not in open(address["log"]).read()  # its credentials went through a private file only
    with pytest.raises(Exception):  # no certificate: the TLS handshake fails, nothing is submitted
        Client(address["scheduler"], timeout=5, set_as_default=False)
    with pytest.raises(Exception):
        Client(address["scheduler"].replace("tls://", "tcp://"), timeout=5, set_as_default=False)
    # The refused clients live on in their tracebacks' cycles. Collected later, inside the next client's start, a
    # refused client's __del__ waits for the event-loop lock that start holds (distributed's LoopRunner): the test
    # hung so once. Collected now, they close on their own.
    gc.collect()
    client = dask_frames.connect(address)
    try:
        assert client.submit(sum, [1, 2, 3]).result() == 6  # with the run's credentials, work runs
    finally:
        client.close()
