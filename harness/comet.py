"""Apache DataFusion Comet: its jar's own facts and the checks that can fail before a JVM starts.

Comet is built for one Spark minor version and one Scala version, both in its artifact's name
(``comet-spark-spark4.1_2.13``) and in the jar's ``pom.properties``. Its jar must be on the driver's and the
executors' class paths (``spark.driver.extraClassPath``, ``spark.executor.extraClassPath``): with it only in
``spark.jars`` its shuffle manager fails with ``IllegalAccessError ... ShuffleInMemorySorter``, because it
must be loaded by the same class loader as Spark's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from . import EngineUnavailable, jars
from .versions import installed_scala, pairing

PLUGIN_CLASS = "org.apache.spark.CometPlugin"


@dataclass(frozen=True)
class CometJar:
    version: str
    spark_minor: str  # "4.1"
    scala: str  # "2.13"
    platforms: frozenset[str]  # native libraries inside: linux/amd64, linux/aarch64, ...


def jar_facts(jar: Path) -> CometJar:
    with jars.open_jar(jar, "comet") as archive:
        poms = [n for n in archive.namelist() if re.fullmatch(r"META-INF/maven/org\.apache\.datafusion/comet-spark-[^/]+/pom\.properties", n)]
        if not poms:
            raise EngineUnavailable(f"{jar} is not a Comet jar (no comet-spark pom.properties inside): download it again "
                                    "with `python -m harness fetch-jars`, or point COMET_JAR at a good copy")
        pom = dict(line.split("=", 1) for line in archive.read(poms[0]).decode().splitlines() if "=" in line)
        platforms = frozenset(m.group(1) for n in archive.namelist()
                              if (m := re.fullmatch(r"org/apache/comet/(\w+/\w+)/libcomet\.\w+", n)))
    match = re.fullmatch(r"comet-spark-spark(\d+\.\d+)_(2\.1[23])", pom.get("artifactId", ""))
    if not match:
        raise EngineUnavailable(f"{jar}: its artifact {pom.get('artifactId')!r} does not say which Spark and Scala it is for")
    return CometJar(pom.get("version", "unknown"), match.group(1), match.group(2), platforms)


def check_jar(jar: Path, spark_version: str) -> CometJar:
    """The jar must be built for the installed Spark's minor version and Scala version."""
    facts = jar_facts(jar)
    minor = ".".join(spark_version.split(".")[:2])
    if facts.spark_minor != minor:
        raise EngineUnavailable(f"{jar.name} (Comet {facts.version}) is built for Spark {facts.spark_minor}, but PySpark "
                                f"{spark_version} is installed: use comet-spark-spark{minor}_{facts.scala}, or the pinned "
                                f"{pairing().comet_pin.file_name}")
    scala = installed_scala()
    if facts.scala != scala:
        raise EngineUnavailable(f"{jar.name} is built for Scala {facts.scala} but PySpark {spark_version} uses Scala "
                                f"{scala}: use the comet-spark-spark{minor}_{scala} jar")
    return facts
