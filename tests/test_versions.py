"""The pinned stack, where the engines' jars are found and fetched, and the key catalogues read from bytecode."""

import pyspark
import pytest

from harness import EngineUnavailable, HarnessError, jars, keys, versions

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
    1724: ldc_w         #908                // String spark.executor.cores
    1727: invokespecial #421                // Method org/apache/spark/internal/config/ConfigBuilder."<init>":(Ljava/lang/String;)V
    1736: invokevirtual #436                // Method org/apache/spark/internal/config/ConfigBuilder.intConf:()Lorg/apache/spark/internal/config/TypedConfigBuilder;
      25: ldc           #51                 // String spark.sql.session.timeZone
      27: putstatic     #53                 // Field SESSION_LOCAL_TIMEZONE_KEY:Ljava/lang/String;
    14432: invokevirtual #3928              // Method org/apache/spark/sql/internal/SqlApiConfHelper$.SESSION_LOCAL_TIMEZONE_KEY:()Ljava/lang/String;
    14435: invokevirtual #849               // Method buildConf:(Ljava/lang/String;)Lorg/apache/spark/internal/config/ConfigBuilder;
    14440: invokevirtual #850               // Method org/apache/spark/internal/config/ConfigBuilder.stringConf:()Lorg/apache/spark/internal/config/TypedConfigBuilder;
"""


def test_installed_spark_is_the_pinned_one():
    pairing = versions.pairing()
    assert versions.check_installed_spark() == pairing.spark == pyspark.__version__ == "4.1.3"
    assert versions.installed_scala() == "2.13"


def test_names_derived_from_the_pins():
    pairing = versions.pairing()
    assert pairing.rapids_pin.file_name == "rapids-4-spark_2.13-26.08.1.jar"
    assert pairing.rapids_pin.maven_path == "com/nvidia/rapids-4-spark_2.13/26.08.1/rapids-4-spark_2.13-26.08.1.jar"
    assert pairing.comet_pin.maven_path == ("org/apache/datafusion/comet-spark-spark4.1_2.13/1.2.0/"
                                           "comet-spark-spark4.1_2.13-1.2.0.jar")
    assert (pairing.shim, pairing.scala) == ("spark413", "2.13")
    assert pairing.shuffle_manager == "com.nvidia.spark.rapids.spark413.RapidsShuffleManager"


def test_a_different_installed_spark_is_refused(monkeypatch):
    monkeypatch.setattr(pyspark, "__version__", "4.2.0")
    with pytest.raises(HarnessError, match=r"PySpark 4\.2\.0 is installed but the suite is pinned to 4\.1\.3"):
        versions.check_installed_spark()


def test_config_builder_calls_are_paired_with_their_types():
    assert keys.parse(JAVAP_SNIPPET) == {
        "spark.rapids.sql.concurrentGpuTasks": "integer", "spark.rapids.sql.python.gpu.enabled": "boolean",
        "spark.executor.cores": "integer", "spark.sql.session.timeZone": "string",  # a key kept in a constant
    }


@pytest.mark.parametrize("name, size, examples", [
    ("spark", 1200, {"spark.sql.shuffle.partitions": "integer", "spark.driver.memory": "bytes",
                     "spark.network.timeout": "time", "spark.connect.grpc.binding.port": "integer"}),
    ("rapids", 250, {"spark.rapids.sql.enabled": "boolean", "spark.rapids.memory.pinnedPool.size": "bytes"}),
    ("comet", 80, {"spark.comet.enabled": "boolean", "spark.comet.batchSize": "integer"}),
])
def test_the_committed_catalogues_hold_the_pinned_versions_keys(name, size, examples):
    found = dict(line.split("\t") for line in keys.CATALOGUES[name].path.read_text().splitlines() if not line.startswith("#"))
    assert len(found) > size and examples.items() <= found.items()
    assert set(found.values()) <= {"boolean", "integer", "long", "double", "bytes", "time", "string"}


@pytest.mark.slow  # javap reads the installed Spark's bytecode
def test_the_spark_catalogue_is_what_the_installed_spark_declares():
    committed = dict(line.split("\t") for line in keys.CATALOGUES["spark"].path.read_text().splitlines()
                     if not line.startswith("#"))
    assert keys.extract(keys.CATALOGUES["spark"].classes()) == committed


@pytest.mark.parametrize("kind", ["rapids", "comet"])
def test_an_explicit_jar_path_wins_then_the_cache_and_a_missing_one_is_refused(monkeypatch, tmp_path, kind):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    cached = jars.cached_path(kind)
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"cached")
    explicit = tmp_path / "mine.jar"
    explicit.write_bytes(b"explicit")
    env = jars.KINDS[kind].env
    monkeypatch.setenv(env, str(explicit))
    assert jars.find(kind) == explicit
    monkeypatch.setenv(env, str(tmp_path / "gone.jar"))
    with pytest.raises(EngineUnavailable, match=rf"{env}=.*gone\.jar: no such file\. Point {env} at a copy"):
        jars.find(kind)  # never silently the cached one instead
    monkeypatch.delenv(env)
    assert jars.find(kind) == cached
    cached.unlink()
    with pytest.raises(EngineUnavailable, match="not downloaded"):
        jars.find(kind)


def test_a_jar_named_in_spark_jars_is_used(tmp_path, monkeypatch):
    monkeypatch.delenv("RAPIDS_PLUGIN_JAR", raising=False)
    mine = tmp_path / "rapids-4-spark_2.13-26.08.1.jar"
    mine.write_bytes(b"x")
    assert jars.find("rapids", f"/other/thing.jar,{mine}") == mine
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty"))
    with pytest.raises(EngineUnavailable, match=r"spark\.jars entry /nowhere/rapids-4-spark.jar \(no such file\)"):
        jars.find("rapids", "/nowhere/rapids-4-spark.jar")


def test_a_download_with_the_wrong_checksum_is_refused_and_removed(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    repo = tmp_path / "repo"
    fake = repo / versions.pairing().comet_pin.maven_path
    fake.parent.mkdir(parents=True)
    fake.write_bytes(b"not comet")
    monkeypatch.setenv(jars.MAVEN_REPO_ENV, repo.as_uri())
    with pytest.raises(HarnessError, match="SHA-1 .* not the pinned"):
        jars.fetch("comet", progress=lambda message: None)
    assert list(jars.cached_path("comet").parent.iterdir()) == []


def test_an_unreachable_repository_says_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv(jars.MAVEN_REPO_ENV, (tmp_path / "nowhere").as_uri())
    with pytest.raises(HarnessError, match=r"(?s)could not download .* set RAPIDS_PLUGIN_JAR"):
        jars.fetch("rapids", progress=lambda message: None)
