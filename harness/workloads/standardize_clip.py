"""Standardize a numeric feature to z-scores, then clip outliers to [-3, 3], four ways.

Same output, different boundary crossings: built-in expressions stay in the JVM (and can run on the GPU);
a row-at-a-time Python UDF crosses to Python per row; an Arrow-optimized UDF and a pandas UDF cross per
Arrow batch. The pandas UDF also runs at several Arrow batch sizes, to find where larger batches stop helping.
"""

import pandas as pd
from pyspark.sql import functions as F
from pyspark.sql.functions import pandas_udf, udf
from pyspark.sql.types import DoubleType

from . import Workload

CLIP = 3.0


def clip_z(x, mu, sigma):
    return None if x is None else max(-CLIP, min(CLIP, (x - mu) / sigma))


def clip_z_pandas(x: pd.Series, mu: pd.Series, sigma: pd.Series) -> pd.Series:
    return ((x - mu) / sigma).clip(-CLIP, CLIP)


# Each way makes its function when the plan is built: a UDF object belongs to the session kind (classic or
# Spark Connect) that is active when it is made.
WAYS = {
    "builtin": lambda: lambda x, mu, sigma: F.least(F.greatest((x - mu) / sigma, F.lit(-CLIP)), F.lit(CLIP)),
    "udf": lambda: udf(clip_z, DoubleType(), useArrow=False),
    "arrow_udf": lambda: udf(clip_z, DoubleType(), useArrow=True),
    "pandas_udf": lambda: pandas_udf(clip_z_pandas, DoubleType()),
}


def build_with(way):
    def build(tables):
        features = tables["features"]
        stats = features.agg(F.avg("x1").alias("mu"), F.stddev_samp("x1").alias("sigma"))
        with_stats = features.crossJoin(F.broadcast(stats))
        return with_stats.select("id", WAYS[way]()(F.col("x1"), F.col("mu"), F.col("sigma")).alias("x1_z"))

    return build


def reference(tables):
    features = tables["features"]
    z = (features.x1 - features.x1.mean()) / features.x1.std(ddof=1)
    return features.assign(x1_z=z.clip(-CLIP, CLIP))[["id", "x1_z"]]


def declare(way, suffix="", sql_conf=None, note=""):
    return Workload(
        name=f"standardize_clip{'' if way == 'builtin' else '_' + way}{suffix}",
        family="featurize",
        tables=("features",),
        build=build_with(way),
        reference=reference,
        frame=reference if way == "builtin" else None,  # the UDF ways differ only in how Spark runs them
        description=f"z-score of x1 over the whole table, clipped to [-3, 3]: {way.replace('_', ' ')}{note}",
        sql_conf=sql_conf or {},
    )


WORKLOADS = [declare(way) for way in WAYS] + [
    declare("pandas_udf", f"_batch{size}", {"spark.sql.execution.arrow.maxRecordsPerBatch": str(size)},
            f", Arrow batches of {size:,} rows")
    for size in (100, 1_000, 100_000)  # 10,000, Spark's default, is the plain pandas_udf workload
]
