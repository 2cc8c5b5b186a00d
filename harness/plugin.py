"""The RAPIDS Accelerator jar: where it is found, how it is fetched, and the config keys it defines.

The jar (about 1 GB, nearly all native libcudf) is never committed. It is looked for at an explicit path
(``RAPIDS_PLUGIN_JAR``), then in the local cache; ``python -m harness fetch-plugin`` downloads it from Maven
Central and checks its SHA-1 against the one pinned in ``pyproject.toml``.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from . import CONF_DIR, EngineUnavailable, HarnessError
from .versions import pairing

JAR_ENV = "RAPIDS_PLUGIN_JAR"
MAVEN_REPO_ENV = "PREPBENCH_MAVEN_REPO"
MAVEN_CENTRAL = "https://repo1.maven.org/maven2"

# Classes whose static initialisers declare the plugin's config keys (ConfBuilder calls).
_CONF_CLASSES = (
    "{shim}/com/nvidia/spark/rapids/RapidsConf$.class",
    "spark-shared/com/nvidia/spark/rapids/python/PythonConfEntries$.class",
)
# Keys the plugin builds at run time from operator names (GpuOverrides), all boolean switches.
DYNAMIC_KEY_PATTERN = re.compile(
    r"spark\.rapids\.sql\.(exec|expression|input|partitioning|command|format|optimizer\.(cpu|gpu)\.(exec|expr))"
    r"\.[A-Za-z][\w.]*"
)


def cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(root) / "prepbench"


def cached_jar_path() -> Path:
    return cache_dir() / "jars" / pairing().jar_name


def find_jar(jars_setting: str = "") -> Path:
    """The plugin jar, or an error naming every place tried and how to provide it.

    Looked for at an explicit path ($RAPIDS_PLUGIN_JAR, then a rapids-4-spark jar named in the configuration's
    spark.jars), then in the local cache.
    """
    tried = []
    explicit = os.environ.get(JAR_ENV)
    if explicit:
        path = Path(explicit).expanduser()
        if path.is_file():
            return path
        tried.append(f"{JAR_ENV}={explicit} (no such file)")
    for entry in filter(None, (e.strip() for e in jars_setting.split(","))):
        if "rapids-4-spark" in entry:  # local: means the same path on every node (nothing is shipped)
            path = Path(entry.removeprefix("file:").removeprefix("local:")).expanduser()
            if path.is_file():
                return path
            tried.append(f"spark.jars entry {entry} (no such file)")
    cached = cached_jar_path()
    if cached.is_file():
        return cached
    tried.append(f"{cached} (not downloaded)")
    raise EngineUnavailable(
        f"The RAPIDS Accelerator jar ({pairing().jar_name}) is needed for the GPU engine but was not found.\n"
        + "".join(f"  tried: {t}\n" for t in tried)
        + "Fetch it with `python -m harness fetch-plugin`, or point "
        + f"{JAR_ENV} at a copy of {pairing().jar_name}."
    )


@dataclass(frozen=True)
class JarFacts:
    """What a plugin jar supports, read from the jar itself."""

    version: str
    scala: str
    cuda_major: int
    shims: frozenset[str]  # spark350, spark420, ...
    gpu_architectures: frozenset[str]  # compute capabilities as "90", "80", ...


def jar_facts(jar: Path) -> JarFacts:
    try:
        with zipfile.ZipFile(jar) as archive:
            names = archive.namelist()
            info = _properties(archive.read("rapids4spark-version-info.properties"))
            jni = _properties(archive.read("spark-rapids-jni-version-info.properties"))
    except (zipfile.BadZipFile, KeyError, OSError) as err:
        raise EngineUnavailable(f"{jar} is not a usable RAPIDS Accelerator jar ({err}): download it again with "
                                "`python -m harness fetch-plugin`, or point RAPIDS_PLUGIN_JAR at a good copy") from err
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


def installed_scala() -> str:
    """The Scala binary version the installed PySpark was built with (from its scala-library jar)."""
    import pyspark

    jars = sorted((Path(pyspark.__file__).parent / "jars").glob("scala-library-*.jar"))
    match = re.search(r"scala-library-(\d+\.\d+)", jars[0].name) if jars else None
    return match.group(1) if match else "unknown"


def check_jar(jar: Path, spark_version: str, gpus: list[dict]) -> JarFacts:
    """The checks that can fail before the JVM starts: Spark shim, Scala, CUDA and GPU architecture."""
    facts = jar_facts(jar)
    shim = "spark" + spark_version.replace(".", "")
    if shim not in facts.shims:
        supported = ", ".join(_as_version(s) for s in sorted(facts.shims))
        raise EngineUnavailable(
            f"{jar.name} (RAPIDS {facts.version}) does not support Spark {spark_version}: its shims cover {supported}. "
            f"Install a supported PySpark or use the plugin pinned in pyproject.toml ({pairing().jar_name}).")
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


def fetch_jar(progress=print) -> Path:
    """Download the pinned jar into the cache, verify its SHA-1, and move it into place atomically."""
    target = cached_jar_path()
    if target.is_file() and _sha1(target) == pairing().jar_sha1:
        progress(f"plugin jar already cached: {target}")
        return target
    url = f"{os.environ.get(MAVEN_REPO_ENV, MAVEN_CENTRAL).rstrip('/')}/{pairing().maven_path}"
    target.parent.mkdir(parents=True, exist_ok=True)
    progress(f"downloading {url}")
    with tempfile.NamedTemporaryFile(dir=target.parent, prefix=".partial-", delete=False) as part:
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                shutil.copyfileobj(response, part, length=1 << 22)
        except OSError as err:
            os.unlink(part.name)
            raise HarnessError(
                f"Could not download the plugin jar from {url}: {err}.\nOn a host without network, copy "
                f"{pairing().jar_name} there and set {JAR_ENV} to its path."
            ) from err
    digest = _sha1(Path(part.name))
    if digest != pairing().jar_sha1:
        os.unlink(part.name)
        raise HarnessError(
            f"The downloaded jar's SHA-1 is {digest}, not the pinned {pairing().jar_sha1}: refusing to use it."
        )
    os.chmod(part.name, 0o644)
    os.replace(part.name, target)
    progress(f"plugin jar verified and cached: {target}")
    return target


def _sha1(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha1").hexdigest()


def catalogue_path() -> Path:
    return CONF_DIR / "keys" / f"rapids-{pairing().rapids}.tsv"


def extract_catalogue(jar: Path) -> dict[str, str]:
    """Every config key the jar's ConfBuilder calls declare, with its type, read from the bytecode."""
    if not shutil.which("javap"):
        raise HarnessError("javap (part of the JDK) is needed to read the plugin's config keys; install a JDK 17.")
    keys: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(jar) as archive:
        for member in (c.format(shim=pairing().shim) for c in _CONF_CLASSES):
            archive.extract(member, tmp)
            listing = subprocess.run(
                ["javap", "-c", "-p", "-constants", str(Path(tmp) / member)],
                check=True, capture_output=True, text=True,
            ).stdout
            keys.update(_parse_conf_builders(listing))
    return keys


def _parse_conf_builders(javap_listing: str) -> dict[str, str]:
    """Pairs each `conf("spark.rapids...")` call with the typed builder (`booleanConf`, ...) that follows it."""
    keys, last_string, pending = {}, None, None
    for line in javap_listing.splitlines():
        if m := re.search(r"// String (spark\.rapids\.[\w.\-]+)$", line):
            last_string = m.group(1)
        elif re.search(r"Method (\S+\.)?conf:\(Ljava/lang/String;\)", line):
            pending = last_string
        elif (m := re.search(r"ConfBuilder\.(\w+)Conf:", line)) and pending:
            keys[pending], pending = m.group(1), None
    return keys


def write_catalogue(jar: Path) -> Path:
    keys = extract_catalogue(jar)
    path = catalogue_path()
    header = (
        f"# Config keys of RAPIDS Accelerator {pairing().rapids}, read from its jar's bytecode by\n"
        f"# `python -m harness rapids-keys`. Do not edit by hand.\n# key\ttype\n"
    )
    body = "".join(f"{k}\t{t}\n" for k, t in sorted(keys.items()))
    tmp = path.with_suffix(".tmp")
    tmp.write_text(header + body)
    os.replace(tmp, path)
    return path


if __name__ == "__main__":  # pragma: no cover - convenience for `python -m harness.plugin JAR`
    print(write_catalogue(Path(sys.argv[1])))
