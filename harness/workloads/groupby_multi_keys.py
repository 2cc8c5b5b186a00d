"""Sum and count by all six keys at once: db-benchmark groupby question 10 (nearly every group unique)."""

from pyspark.sql import functions as F

from . import Workload

KEYS = ["id1", "id2", "id3", "id4", "id5", "id6"]


def build(tables):
    return tables["groupby"].groupBy(*KEYS).agg(F.sum("v3").alias("v3_sum"), F.count(F.lit(1)).alias("count"))


def frame(tables):
    grouped = tables["groupby"].groupby(KEYS, observed=True)
    return grouped.agg(v3_sum=("v3", "sum"), count=("v3", "size")).reset_index()


WORKLOAD = Workload(
    name="groupby_multi_keys",
    family="shuffle",
    tables=("groupby",),
    build=build,
    reference=frame,
    frame=frame,
    description="sum(v3) and count by id1..id6 together",
)
