"""Running on a cluster: what changes when ``spark.master`` is not local.

The suite submits to a cluster a team already runs (Spark standalone, YARN, Kubernetes); it never builds
one. What lives on one machine in local mode is made per-cluster at session start:

* the master is checked before any JVM starts (an unreachable standalone master otherwise costs a minute
  of Spark's retries and ends in "All masters are unresponsive");
* executors run the Python in ``spark.pyspark.python``: by default this interpreter, which exists on an
  executor only on this host or an identical image; elsewhere ship a packed environment with
  ``spark.archives`` and name its interpreter (README, "Clusters");
* the harness's own code ships to executors in ``spark.submit.pyFiles``, because workload functions used
  as UDFs are pickled by reference to their module;
* the plugin jar ships in ``spark.jars`` (``session.preflight`` adds it), and GPU discovery runs on each
  executor host with the script the host profile names.

NVML samples are taken on the driver's host only; on a cluster they describe the GPUs there, if any, not
the executors'. Each record lists the executors that ran it (``executors``, from the monitoring REST API),
so a result says where it ran.
"""

from __future__ import annotations

import hashlib
import io
import os
import socket
import sys
import zipfile
from pathlib import Path
from urllib.parse import urlsplit

from . import HarnessError, jars
from .config import Setting, SparkConf

MASTER_FORMS = "local[N], spark://HOST:PORT, yarn or k8s://https://HOST:PORT"
CONNECT_TIMEOUT_S = 5
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")

# Command-line options for the executor layout: each becomes a command-line override of its Spark property,
# so it is merged, validated and recorded with its source like any --conf.
LAYOUT_OPTIONS = {
    "master": ("spark.master", "URL", f"cluster master ({MASTER_FORMS})"),
    "executors": ("spark.executor.instances", "N", "executors (on standalone: spark.cores.max is derived)"),
    "executor_cores": ("spark.executor.cores", "N", "cores per executor"),
    "executor_memory": ("spark.executor.memory", "SIZE", "memory per executor, e.g. 8g"),
    "executor_gpus": ("spark.executor.resource.gpu.amount", "N", "GPUs per executor (the plugin uses one)"),
    "driver_host": ("spark.driver.host", "HOST", "the address of this host that executors on other hosts reach the "
                    "driver at (a run's Spark Connect server binds its driver there; its gRPC endpoint and UI stay on "
                    "loopback)"),
}


def master(conf: SparkConf) -> str:
    return conf.get("spark.master", Setting("local[*]", "")).value


def is_local(conf: SparkConf) -> bool:
    return master(conf).startswith("local")


def check_master(conf: SparkConf) -> None:
    """Refuse a master that is malformed or cannot be reached, saying what to change, before any JVM starts."""
    url, source = master(conf), conf.get("spark.master", Setting("", "default")).source
    if url.startswith("local"):
        return
    if url.startswith("spark://"):
        addresses = [_host_port(a, 7077) for a in url.removeprefix("spark://").split(",")]  # a,b: HA masters
    elif url.startswith("k8s://"):
        api = url.removeprefix("k8s://")
        parts = urlsplit(api if "://" in api else f"https://{api}")
        addresses = [(parts.hostname, parts.port or (80 if parts.scheme == "http" else 443))]
    elif url == "yarn":
        if not (os.environ.get("HADOOP_CONF_DIR") or os.environ.get("YARN_CONF_DIR")):
            raise HarnessError(f"spark.master is yarn ({source}), but neither HADOOP_CONF_DIR nor YARN_CONF_DIR "
                               "is set: point one at the cluster's client configuration (yarn-site.xml)")
        return
    else:
        raise HarnessError(f"spark.master '{url}' ({source}) is not a master Spark knows: use {MASTER_FORMS}")
    problems = []
    for host, port in addresses:
        if not host:
            raise HarnessError(f"spark.master '{url}' ({source}) names no host: use {MASTER_FORMS}")
        try:
            socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S).close()
            return
        except OSError as err:
            problems.append(f"{host}:{port}: {err.strerror or err}")
    raise HarnessError(f"cannot reach the Spark master {url} ({source}): {'; '.join(problems)}. Start the cluster, "
                       "or point --master (or the host profile's spark.master) at a running one")


def _host_port(address: str, default_port: int) -> tuple[str, int]:
    host, _, port = address.rpartition(":") if ":" in address else (address, "", "")
    try:
        return host.strip("[]"), int(port) if port else default_port
    except ValueError:
        raise HarnessError(f"'{address}' in spark.master is not HOST:PORT") from None


def additions(conf: SparkConf) -> list[tuple[str, str, str]]:
    """(key, value, separator) the harness adds for a cluster session; nothing in local mode.

    A value the configuration already sets is kept; spark.submit.pyFiles is appended to."""
    if is_local(conf):
        return []
    added = [("spark.submit.pyFiles", str(code_archive()), ",")]
    if "spark.pyspark.python" not in conf:
        added.append(("spark.pyspark.python", sys.executable, ""))
    host = urlsplit(master(conf).split(",")[0]).hostname
    if master(conf).startswith("spark://") and host in LOOPBACK_HOSTS and "spark.driver.host" not in conf:
        added.append(("spark.driver.host", "127.0.0.1", ""))  # executors on loopback must reach the driver there
    return added


def executor_python(conf: SparkConf) -> str:
    """The interpreter executors start (PySpark reads it from PYSPARK_PYTHON in the driver's environment)."""
    return conf.get("spark.pyspark.python", Setting(sys.executable, "")).value


def code_archive() -> Path:
    """The harness package as a zip, named by its content, built once per change of the code."""
    package = Path(__file__).resolve().parent
    files = sorted(p for p in package.rglob("*") if p.suffix in (".py", ".sql") and "__pycache__" not in p.parts)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in files:
            name = f"{package.name}/{path.relative_to(package).as_posix()}"
            archive.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), path.read_bytes())
    content = buffer.getvalue()
    target = jars.cache_dir() / "code" / f"harness-{hashlib.sha1(content).hexdigest()[:16]}.zip"
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{os.getpid()}")
        partial.write_bytes(content)
        partial.replace(target)
    return target
