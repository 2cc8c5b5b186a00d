"""Sum and mean per high-cardinality string key (N/100 groups): db-benchmark groupby question 3."""

from pyspark.sql import functions as F

from . import Workload


def build(tables):
    return tables["groupby"].groupBy("id3").agg(F.sum("v1").alias("v1_sum"), F.avg("v3").alias("v3_mean"))


def frame(tables):
    grouped = tables["groupby"].groupby("id3", observed=True)
    return grouped.agg(v1_sum=("v1", "sum"), v3_mean=("v3", "mean")).reset_index()


WORKLOAD = Workload(
    name="groupby_sum_mean",
    family="shuffle",
    tables=("groupby",),
    build=build,
    reference=frame,
    frame=frame,
    description="sum(v1), mean(v3) by id3, a string key with N/100 groups",
)
