"""One Spark Connect server per Spark engine and run: the JVM starts once, benchmark processes are clients.

The server (``SparkConnectService`` in PySpark's own jars, started by ``connect_server.py`` in a local-mode
engine's driver, so that its sessions share Python workers; Spark's own ``SparkConnectServer`` for a cluster
engine) is started with ``spark-submit`` from the installed PySpark and the engine's applied configuration, written to a private
properties file that is deleted once the server has read it (secrets never stay on disk). It listens on a
free loopback port and answers only clients that present the run's fresh token (``spark.connect.
authenticate.token``: ``bench`` hands it to its benchmark processes in their environment, never in a file,
and it is never recorded), serves the monitoring REST API (its UI) on another loopback port, and runs Python UDFs with this
interpreter (``PYSPARK_PYTHON`` and ``PYTHONPATH`` in its environment: properties do not reach a Connect
server's Python workers). ``bench`` starts it, waits for it, and stops it and everything it started when
the run ends, however it ends.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from . import REPO_ROOT, cluster, services, session
from .config import SparkConf

SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
START_TIMEOUT_S = 240  # a JVM start on a loaded 2-core machine has taken over a minute


def properties(conf: SparkConf, grpc_port: int, ui_port: int, token: str) -> dict[str, str]:
    """The server's Spark properties: the engine's, plus its gRPC endpoint on loopback behind the run's token, and
    the UI (for metrics; on loopback through SPARK_LOCAL_IP). The driver binds to loopback unless the
    configuration names a routable address executors on other hosts reach it at (spark.driver.host,
    --driver-host or the host profile)."""
    found = session.spark_properties(conf)
    driver = found.get("spark.driver.host") if "spark.driver.host" in conf else None
    found.update({"spark.connect.grpc.binding.address": services.LOOPBACK,
                  "spark.connect.grpc.binding.port": str(grpc_port), "spark.connect.authenticate.token": token,
                  "spark.ui.enabled": "true", "spark.ui.port": str(ui_port),
                  "spark.driver.host": driver or services.LOOPBACK,
                  "spark.driver.bindAddress": found.get("spark.driver.bindAddress") or driver or services.LOOPBACK})
    return found


def properties_escaped(value: str) -> str:
    """A value as java.util.Properties (spark-submit --properties-file) reads it back unchanged: a backslash is
    an escape there (a regex's \\s would arrive as s), and a line break would end the value."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")


def service(engine: str, conf: SparkConf, log_dir: Path) -> services.Service:
    """The server for `engine`, not yet started; its address is {"url": "sc://...", "ui": "http://..."}."""
    import pyspark

    spark_home = Path(pyspark.__file__).parent
    grpc_port, ui_port = services.free_port(), services.free_port()
    env = {**os.environ, "SPARK_HOME": str(spark_home), "SPARK_LOCAL_IP": services.LOOPBACK,
           "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    if cluster.is_local(conf):  # the server's own Python workers import the harness from here; a cluster's
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))  # get its zip
    for variable in ("SPARK_REMOTE", "SPARK_CONNECT_MODE_ENABLED"):
        env.pop(variable, None)
    private = tempfile.mkdtemp(prefix="prepbench-connect-")  # 0700: the raw values, gone once the server is up
    conf_file = Path(private) / "server.properties"
    conf = session.with_event_log(conf, log_dir.parent / session.EVENT_LOGS / engine)
    token = services.new_token()
    fd = os.open(conf_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        for key, value in properties(conf, grpc_port, ui_port, token).items():
            out.write(f"{key} {properties_escaped(value)}\n")
    if cluster.is_local(conf):  # its sessions share one set of Python workers (see connect_server.py)
        main = [str(Path(__file__).with_name("connect_server.py"))]
    else:
        main = ["--class", SERVER_CLASS, "spark-internal"]
    command = [str(spark_home / "bin" / "spark-submit"), "--name", f"prepbench {engine}",
               "--properties-file", str(conf_file), *main]
    return services.Service(
        f"Spark Connect server for the {engine} engine", command, env, log_dir / f"{engine}-connect.log",
        ready=lambda: services.port_open(grpc_port),
        address=lambda: {"url": f"sc://localhost:{grpc_port}", "ui": f"http://{services.LOOPBACK}:{ui_port}",
                         "token": token},
        timeout_s=START_TIMEOUT_S, cleanup=lambda: shutil.rmtree(private, ignore_errors=True))
