"""Shared fixtures: one CPU Spark session per test process (Spark allows one engine per JVM), tiny data."""

import pytest

from harness import data, session
from harness.config import RunSettings, scale_rows

TINY = "1e4"


@pytest.fixture(scope="session")
def settings(tmp_path_factory):
    root = tmp_path_factory.mktemp("prepbench")
    return RunSettings(
        scales=(TINY,),
        overrides=("spark.sql.shuffle.partitions=4", "spark.hadoop.fs.s3a.secret.key=hunter2"),
        data_dir=root / "data",
        results_dir=root / "results",
    )


@pytest.fixture(scope="session")
def tiny_tables(settings):
    """Every table at the tiny scale, generated once for the whole test run."""
    return {t: data.ensure(t, scale_rows(TINY), settings.seed, settings.data_dir, progress=None) for t in data.TABLES}


@pytest.fixture(scope="session")
def cpu_session(settings):
    return session.start("cpu", settings)


@pytest.fixture(scope="session")
def spark(cpu_session):
    return cpu_session.spark
