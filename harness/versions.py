"""The pinned stack, read from ``pyproject.toml``: the Spark version, the jars the engines add to it, and NVIDIA's
prediction tools.

The RAPIDS Accelerator's shim loader accepts one exact Spark version per shim, and Comet is built for one
Spark minor version, so the Spark pin and both jars are written once, in ``pyproject.toml``, and everything
else (jar names, Maven paths, the shuffle manager's class) derives from them.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from . import REPO_ROOT, HarnessError


@dataclass(frozen=True)
class JarPin:
    """One jar an engine needs, as pinned: its Maven coordinate and SHA-1."""

    key: str  # "rapids" or "comet": the pyproject table and the cache's name for it
    group: str
    artifact: str
    version: str
    sha1: str

    @property
    def file_name(self) -> str:
        return f"{self.artifact}-{self.version}.jar"

    @property
    def maven_path(self) -> str:
        """Path of the jar below a Maven repository root."""
        return f"{self.group.replace('.', '/')}/{self.artifact}/{self.version}/{self.file_name}"

    @property
    def scala(self) -> str:
        """The Scala binary version in the artifact's name: rapids-4-spark_2.13 -> 2.13."""
        match = re.search(r"_(2\.1[23])$", self.artifact)
        return match.group(1) if match else "unknown"


@dataclass(frozen=True)
class ToolsPin:
    """NVIDIA's spark-rapids-tools (QualX), installed in an environment of their own: they pin pyspark<4."""

    package: str
    version: str


@dataclass(frozen=True)
class Pairing:
    spark: str
    rapids_pin: JarPin
    comet_pin: JarPin
    tools_pin: ToolsPin

    @property
    def rapids(self) -> str:
        return self.rapids_pin.version

    @property
    def comet(self) -> str:
        return self.comet_pin.version

    @property
    def scala(self) -> str:
        return self.rapids_pin.scala

    @property
    def shim(self) -> str:
        """The plugin's shim id for this Spark version: 4.1.3 -> spark413."""
        return "spark" + self.spark.replace(".", "")

    @property
    def shuffle_manager(self) -> str:
        return f"com.nvidia.spark.rapids.{self.shim}.RapidsShuffleManager"


@cache
def pairing() -> Pairing:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    pins = [d for d in project["project"]["dependencies"] if re.match(r"pyspark\s*==", d)]
    if len(pins) != 1:
        raise HarnessError("pyproject.toml must pin pyspark with exactly one 'pyspark==X.Y.Z' dependency")
    tables = project["tool"]["prepbench"]
    return Pairing(spark=pins[0].split("==", 1)[1].strip(), rapids_pin=JarPin("rapids", **tables["rapids"]),
                   comet_pin=JarPin("comet", **tables["comet"]), tools_pin=ToolsPin(**tables["tools"]))


def check_installed_spark() -> str:
    """The installed PySpark version; a clear error if it is not the pinned one."""
    import pyspark

    want = pairing().spark
    if pyspark.__version__ != want:
        raise HarnessError(
            f"PySpark {pyspark.__version__} is installed but the suite is pinned to {want} (the version both the "
            f"RAPIDS plugin {pairing().rapids} and Comet {pairing().comet} support). Reinstall with `pip install -e .` "
            "or run through tox."
        )
    return pyspark.__version__


def installed_scala() -> str:
    """The Scala binary version the installed PySpark was built with (from its scala-library jar)."""
    import pyspark

    jars = sorted((Path(pyspark.__file__).parent / "jars").glob("scala-library-*.jar"))
    match = re.search(r"scala-library-(\d+\.\d+)", jars[0].name) if jars else None
    return match.group(1) if match else "unknown"
