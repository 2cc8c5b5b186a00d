"""The pinned Spark/plugin pair, the plugin jar's location, and the key catalogue read from its bytecode."""

import pyspark
import pytest

from harness import EngineUnavailable, HarnessError, plugin, versions

JAVAP_SNIPPET = """
    1388: ldc_w         #853                // String spark.rapids.sql.concurrentGpuTasks
    1391: invokevirtual #433                // Method conf:(Ljava/lang/String;)Lcom/nvidia/spark/rapids/ConfBuilder;
    1394: ldc_w         #855                // String Set the initial number of tasks that can execute concurrently.
    1397: invokevirtual #440                // Method com/nvidia/spark/rapids/ConfBuilder.doc:(Ljava/lang/String;)Lcom/nvidia/spark/rapids/ConfBuilder;
    1400: invokevirtual #562                // Method com/nvidia/spark/rapids/ConfBuilder.integerConf:()Lcom/nvidia/spark/rapids/TypedConfBuilder;
      13: ldc           #37                 // String spark.rapids.sql.python.gpu.enabled
      15: invokevirtual #41                 // Method com/nvidia/spark/rapids/RapidsConf$.conf:(Ljava/lang/String;)Lcom/nvidia/spark/rapids/ConfBuilder;
      23: invokevirtual #52                 // Method com/nvidia/spark/rapids/ConfBuilder.booleanConf:()Lcom/nvidia/spark/rapids/TypedConfBuilder;
      30: ldc           #38                 // String spark.rapids.not.a.conf.just.a.string
      31: invokevirtual #52                 // Method com/nvidia/spark/rapids/ConfBuilder.bytesConf:()Lcom/nvidia/spark/rapids/TypedConfBuilder;
"""


def test_installed_spark_is_the_pinned_one():
    pairing = versions.pairing()
    assert versions.check_installed_spark() == pairing.spark == pyspark.__version__


def test_names_derived_from_the_pair():
    pairing = versions.Pairing(spark="4.2.0", rapids="26.08.1", scala="2.13", jar_sha1="x")
    assert pairing.jar_name == "rapids-4-spark_2.13-26.08.1.jar"
    assert pairing.maven_path == "com/nvidia/rapids-4-spark_2.13/26.08.1/rapids-4-spark_2.13-26.08.1.jar"
    assert pairing.shim == "spark420"
    assert pairing.shuffle_manager == "com.nvidia.spark.rapids.spark420.RapidsShuffleManager"


def test_a_different_installed_spark_is_refused(monkeypatch):
    monkeypatch.setattr(pyspark, "__version__", "4.3.0")
    with pytest.raises(HarnessError, match=r"PySpark 4\.3\.0 is installed but the suite is pinned to 4\.2\.0"):
        versions.check_installed_spark()


def test_conf_builder_calls_are_paired_with_their_types():
    assert plugin._parse_conf_builders(JAVAP_SNIPPET) == {
        "spark.rapids.sql.concurrentGpuTasks": "integer",
        "spark.rapids.sql.python.gpu.enabled": "boolean",
    }


def test_catalogue_for_the_pinned_plugin_is_present():
    lines = [l for l in plugin.catalogue_path().read_text().splitlines() if not l.startswith("#")]
    keys = dict(line.split("\t") for line in lines)
    assert len(keys) > 250
    assert keys["spark.rapids.sql.enabled"] == "boolean"
    assert keys["spark.rapids.memory.pinnedPool.size"] == "bytes"
    assert set(keys.values()) <= {"boolean", "integer", "long", "double", "bytes", "string"}


def test_explicit_jar_path_wins_then_the_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    cached = plugin.cached_jar_path()
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"cached")
    explicit = tmp_path / "mine.jar"
    explicit.write_bytes(b"explicit")
    monkeypatch.setenv(plugin.JAR_ENV, str(explicit))
    assert plugin.find_jar() == explicit
    monkeypatch.delenv(plugin.JAR_ENV)
    assert plugin.find_jar() == cached
    cached.unlink()
    with pytest.raises(EngineUnavailable, match="not downloaded"):
        plugin.find_jar()


def test_a_download_with_the_wrong_checksum_is_refused_and_removed(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    repo = tmp_path / "repo"
    fake = repo / versions.pairing().maven_path
    fake.parent.mkdir(parents=True)
    fake.write_bytes(b"not the plugin")
    monkeypatch.setenv(plugin.MAVEN_REPO_ENV, fake.parent.parent.parent.parent.parent.as_uri())
    with pytest.raises(HarnessError, match="SHA-1 .* not the pinned"):
        plugin.fetch_jar(progress=lambda message: None)
    assert list(plugin.cached_jar_path().parent.iterdir()) == []


def test_an_unreachable_repository_says_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv(plugin.MAVEN_REPO_ENV, (tmp_path / "nowhere").as_uri())
    with pytest.raises(HarnessError, match=r"(?s)Could not download .* set RAPIDS_PLUGIN_JAR"):
        plugin.fetch_jar(progress=lambda message: None)
