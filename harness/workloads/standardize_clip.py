"""Standardize a numeric feature to z-scores, then clip outliers to [-3, 3], with built-in expressions."""

from pyspark.sql import functions as F

from . import Workload

CLIP = 3.0


def build(tables):
    features = tables["features"]
    stats = features.agg(F.avg("x1").alias("mu"), F.stddev_samp("x1").alias("sigma"))
    z = (F.col("x1") - F.col("mu")) / F.col("sigma")
    return features.crossJoin(F.broadcast(stats)).select(
        "id", F.least(F.greatest(z, F.lit(-CLIP)), F.lit(CLIP)).alias("x1_z")
    )


def reference(tables):
    features = tables["features"]
    z = (features.x1 - features.x1.mean()) / features.x1.std(ddof=1)
    return features.assign(x1_z=z.clip(-CLIP, CLIP))[["id", "x1_z"]]


WORKLOAD = Workload(
    name="standardize_clip",
    family="featurize",
    tables=("features",),
    build=build,
    reference=reference,
    description="z-score of x1 over the whole table, clipped to [-3, 3] (built-in expressions)",
)
