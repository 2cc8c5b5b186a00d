"""A Spark Connect server hosted by a classic PySpark driver: what `spark-submit` runs for a local-mode engine.

Spark's own ``SparkConnectServer`` turns on artifact isolation for every session, and an isolated session gets
Python workers of its own: each benchmark process (one session) then starts a Python daemon and its workers
again, and pays their imports in its first run (about 2 s here on every UDF workload, ML fit and vector
fingerprint). Started from Python, the driver keeps PySpark's default (isolation off), so every session of the
run shares one daemon and its workers, as the queries of one long-running application do. A cluster engine keeps
Spark's own server: its sessions ship the harness to executors as session artifacts, which need isolation.

Run by spark-submit with the engine's properties file; it serves until SIGTERM or SIGINT. No harness import:
this runs in the server's process, whatever its Python path.
"""

import signal

from pyspark.sql import SparkSession


def main() -> None:
    spark = SparkSession.builder.getOrCreate()  # the properties spark-submit was given
    spark._jvm.org.apache.spark.sql.connect.service.SparkConnectService.start(spark._jsc.sc())
    signal.sigwait({signal.SIGTERM, signal.SIGINT})  # the JVM's own shutdown hook stops the context


if __name__ == "__main__":
    main()
