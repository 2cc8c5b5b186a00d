"""Shared fixtures: the run's services as `bench` starts them (one Spark Connect server per Spark engine, a Dask
cluster), a Spark Connect session to the CPU engine's server, tiny data.

The test process is a Spark Connect client only: classic sessions (a JVM of their own: plan coverage, the
classic mode's checks, the cluster's driver) run in child processes, as one benchmark process per engine does.
"""

import json
import os
import subprocess

import pytest

from harness import REPO_ROOT, bench, data, services, session
from harness.config import RunSettings, scale_rows

TINY = "1e4"
SERVED = ("cpu", "comet", "dask")  # the engines with a service that the tests use


@pytest.fixture(scope="session")
def settings(tmp_path_factory):
    root = tmp_path_factory.mktemp("prepbench")
    return RunSettings(
        engines=("cpu", "comet", "pandas", "dask"),
        scales=(TINY,),
        overrides=("spark.sql.shuffle.partitions=4", "spark.driver.memory=2g", "spark.hadoop.fs.s3a.secret.key=hunter2"),
        data_dir=root / "data",
        results_dir=root / "results",
    )


@pytest.fixture(scope="session")
def tiny_tables(settings):
    """Every table at the tiny scale, generated once for the whole test run."""
    return {t: data.ensure(t, scale_rows(TINY), settings.seed, settings.data_dir, progress=None) for t in data.TABLES}


@pytest.fixture(scope="session")
def served(settings, tmp_path_factory):
    """The services of the engines in SERVED, started once, their addresses handed to trials as bench does."""
    chosen = RunSettings(**{**settings.__dict__, "engines": SERVED})
    with bench.started_services(chosen, tmp_path_factory.mktemp("service-logs"), progress=lambda m: None) as addresses:
        os.environ[services.SERVICES_ENV] = json.dumps(addresses)
        yield addresses
        os.environ.pop(services.SERVICES_ENV, None)
        from distributed import Client

        from harness.backends import spark as spark_backend

        spark_backend.close_all()

        for client in list(Client._instances):  # before the cluster stops: a client would try to reconnect
            client.close()


@pytest.fixture(scope="session")
def e2e(request):
    """The one end-to-end `bench --smoke` run the tests share (tests/e2e_run.py), started when the session began;
    its records are read, never rerun."""
    started = request.config.stash.get(E2E_RUN, None)
    assert started is not None, "the end-to-end run starts at collection when a selected test reads it"
    asv_results = REPO_ROOT / "results" / "asv"
    before = request.config.stash[ASV_BEFORE]
    found = started.wait()
    after = sorted(asv_results.rglob("*.json")) if asv_results.exists() else []
    assert after == before, "a smoke run must leave results/asv alone"
    return found


@pytest.fixture(scope="session")
def spark(served):
    """A Spark Connect session to the CPU engine's server, closed before the server stops."""
    spark = session.remote(served["cpu"]["url"], local_server=True, token=served["cpu"]["token"])
    yield spark
    spark.stop()


HEAVY_FIXTURES = {"served", "spark", "tiny_tables", "e2e"}  # a JVM, a Dask cluster, generated data, a bench run
HEAVY_MARKERS = ("plugin_jar", "browser", "cluster", "network")


E2E_RUN = pytest.StashKey()
ASV_BEFORE = pytest.StashKey()


def pytest_collection_finish(session):
    """Start the end-to-end run in the background now if a selected test reads it, and run those tests last, so
    that the rest of the suite runs while it does."""
    if not any("e2e" in getattr(item, "fixturenames", ()) for item in session.items):
        return
    import e2e_run

    asv_results = REPO_ROOT / "results" / "asv"
    session.config.stash[ASV_BEFORE] = sorted(asv_results.rglob("*.json")) if asv_results.exists() else []
    session.config.stash[E2E_RUN] = e2e_run.Started(session.config._tmp_path_factory.mktemp("e2e"))
    session.items.sort(key=lambda item: "e2e" in getattr(item, "fixturenames", ()))


def pytest_sessionfinish(session):
    started = session.config.stash.get(E2E_RUN, None)
    if started is not None:
        started.stop()


def pytest_collection_modifyitems(items):
    """Tests that start Spark, a browser, a cluster or a subprocess, build a bundle or download are slow:
    `pytest -m "not slow"` (the quick loop) skips them. A test module that starts processes itself says so with
    `pytestmark = pytest.mark.slow`; one using the shared services or data is marked here."""
    for item in items:
        if HEAVY_FIXTURES & set(getattr(item, "fixturenames", ())) or any(item.get_closest_marker(m) for m in HEAVY_MARKERS):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def _the_quick_loop_starts_no_process(request, monkeypatch):
    """A test not marked slow starts no process (no JVM, no bench, no browser): the quick loop stays quick."""
    if request.node.get_closest_marker("slow"):
        return

    def refuse(*args, **kwargs):
        raise AssertionError(f"a quick test started a process ({args[0] if args else kwargs.get('args')}): mark it "
                             "slow, or keep it in-process")

    monkeypatch.setattr(subprocess, "Popen", refuse)
