"""Spark sessions for the Spark engines: the checks before any JVM, and the three ways a process gets one.

Everything that can be checked without a JVM is checked first (Java, the pinned PySpark, the master, the
RAPIDS plugin jar and a GPU, the Comet jar), because a session that fails to start leaves its settings in
the JVM and a missing plugin class fails only after seconds. ``preflight`` returns the configuration as
applied: the merged layers plus what the harness adds (jars, class paths, logging, the redaction rule, the
monitoring UI on loopback).

A benchmark process then connects to its engine's Spark Connect server (``remote``: the JVM, its caches and
the GPU's memory pool stay warm across benchmarks), or starts a classic session of its own (``classic``:
one JVM per process, with a class-data sharing archive that cuts about 3 s off its start).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from . import CONF_DIR, EngineUnavailable, HarnessError, cluster, comet, gpu, jars, plugin
from .config import SECRET_NAMES, SUITE_PREFIX, RunSettings, Setting, SparkConf
from .versions import check_installed_spark

PLUGIN_CLASS = "com.nvidia.spark.SQLPlugin"
ADDED_BY_HARNESS = "harness (session start)"


def uses_plugin(conf: SparkConf) -> bool:
    return PLUGIN_CLASS in conf.get("spark.plugins", Setting("", "")).value


def uses_comet(conf: SparkConf) -> bool:
    return comet.PLUGIN_CLASS in conf.get("spark.plugins", Setting("", "")).value


def java_binary() -> str:
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not java or not os.access(java, os.X_OK):
        raise HarnessError("Java 17 is needed to run Spark: install a JDK 17 (e.g. apt-get install openjdk-17-jdk) "
                           "or set JAVA_HOME to one")
    return java


def preflight(engine: str, conf: SparkConf) -> SparkConf:
    """Checks that need no JVM; returns the configuration with what the harness adds."""
    java_binary()
    spark_version = check_installed_spark()
    cluster.check_master(conf)
    applied = dict(conf)
    if uses_plugin(conf):
        jar = jars.find("rapids", conf.get("spark.jars", Setting("", "")).value)  # raises with the places tried
        gpus, problem = gpu.probe()
        plugin.check_jar(jar, spark_version, gpus)
        plugin.check_shuffle_manager(conf.get("spark.shuffle.manager", Setting("", "")).value)
        if problem:
            raise EngineUnavailable(
                f"the '{engine}' engine runs the RAPIDS Accelerator, which needs an NVIDIA GPU: {problem}. "
                "Run it on a GPU host (`python -m harness doctor` lists what this host has)."
            )
        if str(jar) not in applied.get("spark.jars", Setting("", "")).value:
            _append(applied, "spark.jars", str(jar), ",")
    if uses_comet(conf):
        jar = jars.find("comet", conf.get("spark.jars", Setting("", "")).value)
        comet.check_jar(jar, spark_version)
        for key in ("spark.driver.extraClassPath", "spark.executor.extraClassPath"):
            _append(applied, key, str(jar), os.pathsep)
    for key, value, separator in cluster.additions(conf):
        _append(applied, key, value, separator)
    _append(applied, "spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile=file:{CONF_DIR / 'log4j2.properties'}", " ")
    applied.setdefault("spark.redaction.regex", Setting(REDACTION_REGEX, ADDED_BY_HARNESS))  # Spark's UI and event log too
    return applied


EVENT_LOGS = "eventlogs"  # under a run directory: Spark's event log of each engine's application(s)
# Spark redacts a property in its UI and event log when its key or its value matches spark.redaction.regex:
# the suite's secret names, credentials inside a URL (scheme://user:password@host) and SAS signatures.
REDACTION_REGEX = SECRET_NAMES + r"|://[^/\s:@]+:[^/\s@]+@|(?<![\w.-])sig="


def with_event_log(conf: SparkConf, directory: Path) -> SparkConf:
    """The configuration with Spark's event log written into `directory` (one file per application), unless
    the configuration already says where event logs go. QualX's prediction and the profiling tool read it."""
    if "spark.eventLog.enabled" in conf or "spark.eventLog.dir" in conf:
        return conf
    directory.mkdir(parents=True, exist_ok=True)
    # one file per application, not Spark 4's rolling folder per application: the qualification tool reads a
    # folder holding several of those as one Databricks log and fails
    return {**conf, "spark.eventLog.enabled": Setting("true", ADDED_BY_HARNESS),
            "spark.eventLog.dir": Setting(directory.resolve().as_uri(), ADDED_BY_HARNESS),
            "spark.eventLog.rolling.enabled": Setting("false", ADDED_BY_HARNESS)}


def _append(conf: SparkConf, key: str, value: str, separator: str) -> None:
    previous = conf.get(key)
    if previous:
        conf[key] = Setting(previous.value + separator + value, f"{previous.source} + {ADDED_BY_HARNESS}")
    else:
        conf[key] = Setting(value, ADDED_BY_HARNESS)


def spark_properties(conf: SparkConf) -> dict[str, str]:
    """What Spark is given: every key but the suite's own (prepbench.* never reaches Spark)."""
    return {key: s.value for key, s in conf.items() if not key.startswith(SUITE_PREFIX)}


# ---------------------------------------------------------------------------------------------- sessions


_classic: tuple[str, object] | None = None  # (engine, SparkSession) of this process's classic session


def classic(engine: str, conf: SparkConf, monitored: bool = True, extra_java_options: str = ""):
    """This process's classic session for `engine` (a JVM of its own); a second engine is refused.

    With `monitored`, the UI serves the monitoring REST API on a free loopback port."""
    global _classic
    if _classic is not None:
        if _classic[0] == engine:
            return _classic[1]
        raise HarnessError(f"this process already runs the '{_classic[0]}' engine; start one process per "
                           "engine (a Spark JVM keeps the settings of the first session)")
    properties = spark_properties(conf)
    java_options = " ".join(filter(None, [properties.get("spark.driver.extraJavaOptions", ""), *class_archive_flags(),
                                           extra_java_options]))
    properties["spark.driver.extraJavaOptions"] = java_options
    if monitored:
        properties.update({"spark.ui.enabled": "true", "spark.ui.port": "0"})
        if cluster.is_local(conf):  # a cluster's executors must reach the driver: its own address, not loopback
            properties.update({"spark.driver.bindAddress": "127.0.0.1",
                               "spark.driver.host": properties.get("spark.driver.host", "127.0.0.1")})
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"  # the UI binds here: only this host reads the monitoring API
    for variable in ("SPARK_CONNECT_MODE_ENABLED", "SPARK_REMOTE"):  # inherited from a Connect client's process
        os.environ.pop(variable, None)
    os.environ["PYSPARK_PYTHON"] = cluster.executor_python(conf)  # this interpreter, unless the conf names one
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    from pyspark.sql import SparkSession

    builder = SparkSession.builder
    for key, value in properties.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    _classic = (engine, spark)
    return spark


def activate(spark):
    """Make a Spark Connect session the active and default one. Spark ML over Connect sends fits to the active
    session, so a model and the DataFrames it is used on must live in one server-side session (a process that
    opened another session before, such as a test process, holds another)."""
    type(spark)._active_session.session = spark
    with type(spark)._lock:
        type(spark)._default_session = spark
    return spark


def remote(url: str, local_server: bool = False, token: str | None = None):
    """A Spark Connect session: a new server-side session of its own, for this process, presenting `token` (the
    run's own server's; an endpoint a team runs takes one from its URL or SPARK_CONNECT_AUTHENTICATE_TOKEN).
    Against this run's own server on loopback, calls are retried for seconds, not minutes: a server that died
    fails the benchmark with its reason instead of hanging it (and its exit) for the client's default ten minutes."""
    from pyspark.sql import SparkSession

    spark = activate(SparkSession.builder.remote(f"{url.rstrip('/')}/;token={token}" if token else url).create())
    if local_server:
        from pyspark.sql.connect.client.retries import DefaultPolicy

        spark._client.set_retry_policies([DefaultPolicy(max_retries=4, max_backoff=2000)])
    return spark


# ---------------------------------------------------------------------------------------------- class-data sharing


def class_archive_path() -> Path:
    """The archive for this JDK and these Spark jars. The JVM ignores an archive whose classpath jars changed
    (a reinstall rewrites them), so their sizes and times are part of the name."""
    import pyspark

    java = os.path.realpath(java_binary())
    spark_jars = sorted((Path(pyspark.__file__).parent / "jars").glob("*.jar"))
    key = ";".join([java, str(os.stat(java).st_mtime_ns), sys.prefix,
                    *(f"{j.name}:{j.stat().st_size}:{j.stat().st_mtime_ns}" for j in spark_jars)])
    return jars.cache_dir() / "class-archive" / f"spark-{hashlib.sha1(key.encode()).hexdigest()[:16]}.jsa"


def class_archive_flags() -> list[str]:
    archive = class_archive_path()
    if not archive.is_file():
        return []
    # -Xshare:auto (the default) falls back to no sharing if the archive does not match; keep that quiet.
    return [f"-XX:SharedArchiveFile={archive}", "-Xlog:cds=off", "-Xlog:cds+dynamic=off"]


def build_class_archive(settings: RunSettings, progress=print) -> Path | None:
    """Record the classes a small Spark job loads into an archive, once per machine, in a child process (classic
    sessions only: with Spark Connect a run starts one JVM per engine, not one per benchmark)."""
    progress = progress or (lambda message: None)
    archive = class_archive_path()
    if archive.is_file():
        return archive
    archive.parent.mkdir(parents=True, exist_ok=True)
    partial = archive.with_name(f".{archive.name}.{os.getpid()}")
    progress("building the JVM class archive for classic sessions (once per machine, about 30 s)")
    env = {**os.environ, **settings.to_env()}
    began = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "harness.session", str(partial)], env=env,
                          capture_output=True, text=True)
    if done.returncode != 0 or not partial.is_file() or partial.stat().st_size == 0:
        partial.unlink(missing_ok=True)
        progress(f"could not build the class archive; sessions start without it:\n{done.stderr[-2000:]}")
        return None
    os.replace(partial, archive)
    progress(f"class archive built in {time.perf_counter() - began:.0f} s: {archive}")
    return archive


def _archive_run(partial: str) -> None:
    """Child process: run a representative job with the JVM set to dump its loaded classes at exit."""
    settings = RunSettings.from_env()
    spark = classic("cpu", preflight("cpu", settings.spark_conf("cpu")), monitored=True,
                    extra_java_options=f"-XX:ArchiveClassesAtExit={partial}")
    from pyspark.sql import functions as F
    from pyspark.sql.window import Window

    from .fingerprint import spark_fingerprint

    facts = spark.range(200_000).select(
        "id", (F.col("id") % 97).alias("k"), F.rand(1).alias("v"), F.concat(F.lit("id"), F.col("id")).alias("s"))
    dims = spark.range(97).select(F.col("id").alias("k"), F.lit(1.5).alias("w"))
    joined = facts.join(dims, "k").groupBy("k").agg(F.sum("v"), F.avg("w"), F.count("s"))
    ranked = facts.withColumn("r", F.row_number().over(Window.partitionBy("k").orderBy("v")))
    with_parquet = Path(partial).with_suffix(".parquet")
    facts.write.mode("overwrite").parquet(str(with_parquet))
    for df in (joined, ranked, spark.read.parquet(str(with_parquet)).groupBy("k").count()):
        df.write.format("noop").mode("overwrite").save()
    spark_fingerprint(facts)
    shutil.rmtree(with_parquet, ignore_errors=True)
    spark.stop()


if __name__ == "__main__":
    _archive_run(sys.argv[1])
