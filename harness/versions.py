"""The pinned Spark version and the RAPIDS plugin paired with it, read from ``pyproject.toml``.

The plugin's shim loader accepts one exact Spark version per shim, so the pair is written once, in
``pyproject.toml``, and everything else (jar name, Maven coordinate, shuffle manager class) derives from it.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from functools import cache

from . import REPO_ROOT, HarnessError


@dataclass(frozen=True)
class Pairing:
    spark: str
    rapids: str
    scala: str
    jar_sha1: str

    @property
    def jar_name(self) -> str:
        return f"rapids-4-spark_{self.scala}-{self.rapids}.jar"

    @property
    def maven_path(self) -> str:
        """Path of the jar below a Maven repository root (x86_64, CUDA 12: no classifier)."""
        artifact = f"rapids-4-spark_{self.scala}"
        return f"com/nvidia/{artifact}/{self.rapids}/{self.jar_name}"

    @property
    def shim(self) -> str:
        """The plugin's shim id for this Spark version: 4.2.0 -> spark420."""
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
    rapids = project["tool"]["prepbench"]["rapids"]
    return Pairing(
        spark=pins[0].split("==", 1)[1].strip(),
        rapids=rapids["version"],
        scala=rapids["scala"],
        jar_sha1=rapids["sha1"],
    )


def check_installed_spark() -> str:
    """The installed PySpark version; a clear error if it is not the pinned one."""
    import pyspark

    want = pairing().spark
    if pyspark.__version__ != want:
        raise HarnessError(
            f"PySpark {pyspark.__version__} is installed but the suite is pinned to {want} (the version the "
            f"RAPIDS plugin {pairing().rapids} supports). Reinstall with `pip install -e .` or run through tox."
        )
    return pyspark.__version__
