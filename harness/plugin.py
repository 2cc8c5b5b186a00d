"""The RAPIDS Accelerator jar's own facts and the checks that can fail before a JVM starts.

The jar (found and fetched by ``jars``) states what it supports: its Spark shims (``sparkNNN/``
directories; the shim loader accepts exact versions only), its CUDA major version (the jar's classifier)
and the GPU architectures its native code was built for. Each mismatch with this host is a message saying
what to change.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from . import EngineUnavailable, jars
from .versions import installed_scala, pairing

@dataclass(frozen=True)
class JarFacts:
    """What a plugin jar supports, read from the jar itself."""

    version: str
    scala: str
    cuda_major: int
    shims: frozenset[str]  # spark350, spark420, ...
    gpu_architectures: frozenset[str]  # compute capabilities as "90", "80", ...


def jar_facts(jar: Path) -> JarFacts:
    with jars.open_jar(jar, "rapids") as archive:
        names = archive.namelist()
        try:
            info = _properties(archive.read("rapids4spark-version-info.properties"))
            jni = _properties(archive.read("spark-rapids-jni-version-info.properties"))
        except KeyError as err:
            raise EngineUnavailable(f"{jar} is not a RAPIDS Accelerator jar ({err} is missing): download it again "
                                    "with `python -m harness fetch-jars`, or point RAPIDS_PLUGIN_JAR at a good copy") from None
    name = re.fullmatch(r"rapids-4-spark_(2\.1[23])-([\d.]+)(?:-(cuda\d+))?(?:-[\w-]+)?\.jar", jar.name)
    scala = name.group(1) if name else pairing().scala
    classifier = name.group(3) if name and name.group(3) else "cuda12"  # no classifier: CUDA 12
    return JarFacts(
        version=info.get("version", "unknown"),
        scala=scala,
        cuda_major=int(classifier.removeprefix("cuda")),
        shims=frozenset(n.split("/", 1)[0] for n in names if re.match(r"spark\d+/", n)),
        gpu_architectures=frozenset(a.strip() for a in jni.get("gpu_architectures", "").split(";") if a.strip()),
    )


def _properties(raw: bytes) -> dict[str, str]:
    return dict(line.split("=", 1) for line in raw.decode().splitlines() if "=" in line and not line.startswith("#"))


def check_jar(jar: Path, spark_version: str, gpus: list[dict]) -> JarFacts:
    """The checks that can fail before the JVM starts: Spark shim, Scala, CUDA and GPU architecture."""
    facts = jar_facts(jar)
    shim = "spark" + spark_version.replace(".", "")
    if shim not in facts.shims:
        supported = ", ".join(_as_version(s) for s in sorted(facts.shims))
        raise EngineUnavailable(
            f"{jar.name} (RAPIDS {facts.version}) does not support Spark {spark_version}: its shims cover {supported}. "
            f"Install a supported PySpark or use the plugin pinned in pyproject.toml ({pairing().rapids_pin.file_name}).")
    scala = installed_scala()
    if scala != facts.scala:
        raise EngineUnavailable(f"{jar.name} is built for Scala {facts.scala} but PySpark {spark_version} uses "
                                f"Scala {scala}: use the rapids-4-spark_{scala} jar")
    for gpu in gpus:
        driver_cuda = gpu.get("cuda_driver_version", 0) // 1000
        if driver_cuda and driver_cuda < facts.cuda_major:
            raise EngineUnavailable(
                f"{jar.name} needs CUDA {facts.cuda_major} but the driver on this host supports CUDA {driver_cuda} "
                f"(driver {gpu.get('driver')}): upgrade the NVIDIA driver (R525 or newer for CUDA 12)")
        arch = gpu.get("compute_capability")
        if arch and facts.gpu_architectures and arch not in facts.gpu_architectures:
            raise EngineUnavailable(f"GPU {gpu.get('index')} ({gpu.get('name')}, compute capability {arch}) is not "
                                    f"among the architectures {jar.name} was built for: "
                                    f"{', '.join(sorted(facts.gpu_architectures))}")
    return facts


def check_shuffle_manager(value: str) -> None:
    """A RAPIDS shuffle manager's class embeds the Spark version; another version's class fails at start."""
    if "RapidsShuffleManager" in value and value != pairing().shuffle_manager:
        raise EngineUnavailable(f"spark.shuffle.manager is {value}, but for Spark {pairing().spark} it must be "
                                f"{pairing().shuffle_manager} (write com.nvidia.spark.rapids.${{spark.shim}}."
                                "RapidsShuffleManager in conf/ to have it derived)")


def _as_version(shim: str) -> str:
    digits = shim.removeprefix("spark")
    return ".".join(digits[:3]) + digits[3:] if len(digits) > 3 else ".".join(digits)
