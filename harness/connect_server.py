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

from pyspark import SparkConf
from pyspark.sql import SparkSession

# What a PySpark driver would set otherwise (pyspark.core.context.DEFAULT_CONFIGS), as Spark's own server has it;
# artifact isolation stays off, which is the point.
SPARK_DEFAULTS = {"spark.rdd.compress": "false", "spark.serializer.objectStreamReset": "100"}


def main() -> None:
    conf = SparkConf()  # the properties spark-submit was given
    for key, spark_default in SPARK_DEFAULTS.items():  # not PySpark's defaults: the server runs as Spark's own would
        conf.set(key, conf.get(key, spark_default))
    spark = SparkSession.builder.config(conf=conf).getOrCreate()
    spark._jvm.org.apache.spark.sql.connect.service.SparkConnectService.start(spark._jsc.sc())
    signal.sigwait({signal.SIGTERM, signal.SIGINT})  # the JVM's own shutdown hook stops the context


if __name__ == "__main__":
    main()
