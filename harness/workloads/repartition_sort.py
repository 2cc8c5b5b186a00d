"""Moving every row: a hash repartition by key, and a global sort (range partitioning)."""

from pyspark.sql import functions as F

from . import Workload


def reference(tables):
    return tables["groupby"]


WORKLOADS = [
    Workload(
        name="repartition_by_key",
        family="shuffle",
        tables=("groupby",),
        build=lambda tables: tables["groupby"].repartition("id3"),
        reference=reference,
        description="every row of the groupby table hash-partitioned by id3",
    ),
    Workload(
        name="sort_global",
        family="shuffle",
        tables=("groupby",),
        build=lambda tables: tables["groupby"].orderBy(F.col("v3"), F.col("id6")),
        reference=reference,
        frame=lambda tables: tables["groupby"].sort_values(["v3", "id6"]),
        description="the groupby table sorted by v3, id6 (a total order across partitions)",
    ),
]
