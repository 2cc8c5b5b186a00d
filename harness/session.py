"""One SparkSession per process, for one engine, started from the merged configuration.

Everything that can be checked without a JVM is checked first (Java, the pinned PySpark, the plugin jar and
a GPU for the plugin engine), because a session that fails to start leaves its settings in the JVM and a
missing plugin class fails only after seconds. The time to start the session is measured on its own, apart
from any workload time.

Start-up cost matters here: asv starts a process per benchmark. The driver JVM therefore uses a class-data
sharing archive of the classes Spark loads (built once per machine by ``build_class_archive``), which cuts
a benchmark process's fixed cost by about 3 s.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from . import CONF_DIR, EngineUnavailable, HarnessError, cluster, gpu, plugin
from .config import SUITE_PREFIX, RunSettings, Setting, SparkConf
from .versions import check_installed_spark

PLUGIN_CLASS = "com.nvidia.spark.SQLPlugin"
ADDED_BY_HARNESS = "harness (session start)"


@dataclass
class EngineSession:
    engine: str
    spark: object  # pyspark.sql.SparkSession
    conf: SparkConf  # as applied: the merged layers plus what the harness added
    start_seconds: float


_current: EngineSession | None = None


def uses_plugin(conf: SparkConf) -> bool:
    return PLUGIN_CLASS in conf.get("spark.plugins", Setting("", "")).value


def java_binary() -> str:
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not java or not os.access(java, os.X_OK):
        raise HarnessError("Java 17 is needed to run Spark: install a JDK 17 (e.g. apt-get install openjdk-17-jdk) "
                           "or set JAVA_HOME to one")
    return java


def preflight(engine: str, conf: SparkConf) -> SparkConf:
    """Checks that need no JVM; returns the configuration with what the harness adds (jar, JVM options)."""
    java_binary()
    check_installed_spark()
    cluster.check_master(conf)
    applied = dict(conf)
    if uses_plugin(conf):
        jar = plugin.find_jar(conf.get("spark.jars", Setting("", "")).value)  # raises with the places tried
        gpus, problem = gpu.probe()
        plugin.check_jar(jar, check_installed_spark(), gpus)
        plugin.check_shuffle_manager(conf.get("spark.shuffle.manager", Setting("", "")).value)
        if problem:
            raise EngineUnavailable(
                f"the '{engine}' engine runs the RAPIDS Accelerator, which needs an NVIDIA GPU: {problem}. "
                "Run it on a GPU host (`python -m harness doctor` lists what this host has)."
            )
        if str(jar) not in applied.get("spark.jars", Setting("", "")).value:
            _append(applied, "spark.jars", str(jar), ",")
    for key, value, separator in cluster.additions(conf):
        _append(applied, key, value, separator)
    java_options = [f"-Dlog4j2.configurationFile=file:{CONF_DIR / 'log4j2.properties'}", *class_archive_flags()]
    _append(applied, "spark.driver.extraJavaOptions", " ".join(java_options), " ")
    return applied


def _append(conf: SparkConf, key: str, value: str, separator: str) -> None:
    previous = conf.get(key)
    if previous:
        conf[key] = Setting(previous.value + separator + value, f"{previous.source} + {ADDED_BY_HARNESS}")
    else:
        conf[key] = Setting(value, ADDED_BY_HARNESS)


def start(engine: str, settings: RunSettings, extra_java_options: str = "", conf: SparkConf | None = None) -> EngineSession:
    """The process's session for `engine`; a second engine in the same process is refused.

    `conf` replaces the engine's checked configuration (the plan-coverage session passes its own)."""
    global _current
    if _current is not None:
        if _current.engine == engine:
            return _current
        raise HarnessError(f"this process already runs the '{_current.engine}' engine; start one process per "
                           "engine (a Spark JVM keeps the settings of the first session)")
    conf = conf if conf is not None else preflight(engine, settings.spark_conf(engine))
    if extra_java_options:
        _append(conf, "spark.driver.extraJavaOptions", extra_java_options, " ")
    os.environ["PYSPARK_PYTHON"] = cluster.executor_python(conf)  # this interpreter, unless the conf names one
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    from pyspark.sql import SparkSession

    builder = SparkSession.builder
    for key, setting in conf.items():
        if not key.startswith(SUITE_PREFIX):
            builder = builder.config(key, setting.value)
    began = time.perf_counter()
    spark = builder.getOrCreate()
    _current = EngineSession(engine, spark, conf, time.perf_counter() - began)
    return _current


# ---------------------------------------------------------------------------------------------- class-data sharing


def class_archive_path() -> Path:
    """The archive for this JDK and these Spark jars. The JVM ignores an archive whose classpath jars changed
    (a reinstall rewrites them), so their sizes and times are part of the name."""
    import pyspark

    java = os.path.realpath(java_binary())
    jars = sorted((Path(pyspark.__file__).parent / "jars").glob("*.jar"))
    key = ";".join([java, str(os.stat(java).st_mtime_ns), sys.prefix,
                    *(f"{j.name}:{j.stat().st_size}:{j.stat().st_mtime_ns}" for j in jars)])
    return plugin.cache_dir() / "class-archive" / f"spark-{hashlib.sha1(key.encode()).hexdigest()[:16]}.jsa"


def class_archive_flags() -> list[str]:
    archive = class_archive_path()
    if not archive.is_file():
        return []
    # -Xshare:auto (the default) falls back to no sharing if the archive does not match; keep that quiet.
    return [f"-XX:SharedArchiveFile={archive}", "-Xlog:cds=off", "-Xlog:cds+dynamic=off"]


def build_class_archive(settings: RunSettings, progress=print) -> Path | None:
    """Record the classes a small Spark job loads into an archive, once per machine, in a child process."""
    progress = progress or (lambda message: None)
    archive = class_archive_path()
    if archive.is_file():
        return archive
    archive.parent.mkdir(parents=True, exist_ok=True)
    partial = archive.with_name(f".{archive.name}.{os.getpid()}")
    progress("building the JVM class archive (once per machine, about 30 s)")
    env = {**os.environ, **settings.to_env()}
    done = subprocess.run([sys.executable, "-m", "harness.session", str(partial)], env=env,
                          capture_output=True, text=True)
    if done.returncode != 0 or not partial.is_file() or partial.stat().st_size == 0:
        partial.unlink(missing_ok=True)
        progress(f"could not build the class archive; sessions start without it:\n{done.stderr[-2000:]}")
        return None
    os.replace(partial, archive)
    return archive


def _archive_run(partial: str) -> None:
    """Child process: run a representative job with the JVM set to dump its loaded classes at exit."""
    settings = RunSettings.from_env()
    spark = start("cpu", settings, extra_java_options=f"-XX:ArchiveClassesAtExit={partial}").spark
    from pyspark.sql import functions as F
    from pyspark.sql.window import Window

    from .workloads import checksum

    facts = spark.range(200_000).select(
        "id", (F.col("id") % 97).alias("k"), F.rand(1).alias("v"), F.concat(F.lit("id"), F.col("id")).alias("s"))
    dims = spark.range(97).select(F.col("id").alias("k"), F.lit(1.5).alias("w"))
    joined = facts.join(dims, "k").groupBy("k").agg(F.sum("v"), F.avg("w"), F.count("s"))
    ranked = facts.withColumn("r", F.row_number().over(Window.partitionBy("k").orderBy("v")))
    with_parquet = Path(partial).with_suffix(".parquet")
    facts.write.mode("overwrite").parquet(str(with_parquet))
    for df in (joined, ranked, spark.read.parquet(str(with_parquet)).groupBy("k").count()):
        df.write.format("noop").mode("overwrite").save()
    checksum(facts)
    shutil.rmtree(with_parquet, ignore_errors=True)
    spark.stop()


if __name__ == "__main__":
    _archive_run(sys.argv[1])
