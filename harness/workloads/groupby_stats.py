"""Summary statistics per key at three cardinalities: 100 keys, N/100 keys, and about one key per row.

sum, mean, sample standard deviation, min, max, count and an approximate median. The median is approximate
(Spark's percentile_approx; the GPU uses a t-digest), so engines are compared within 1%.
"""

import numpy as np
from pyspark.sql import functions as F

from . import Workload

# name: (table, key, value, description of the key)
CARDINALITIES = {
    "100": ("groupby", "id1", "v3", "100 string keys"),
    "n100": ("groupby", "id3", "v3", "N/100 string keys"),
    "n": ("join_x", "id3", "v1", "about one integer key per row"),
}


def build_with(table, key, value):
    def build(tables):
        return tables[table].groupBy(key).agg(
            F.sum(value).alias("sum"), F.avg(value).alias("mean"), F.stddev_samp(value).alias("std"),
            F.min(value).alias("min"), F.max(value).alias("max"), F.count(F.lit(1)).alias("count"),
            F.percentile_approx(value, 0.5).alias("median"))

    return build


def lower_median(values):
    ordered = np.sort(values.to_numpy())
    return ordered[max(int(np.ceil(0.5 * len(ordered))) - 1, 0)]


def reference_with(table, key, value):
    def reference(tables):
        grouped = tables[table].groupby(key, as_index=False)[value]
        return grouped.agg(sum="sum", mean="mean", std="std", min="min", max="max", count="count",
                           median=lower_median)

    return reference


WORKLOADS = [
    Workload(
        name=f"groupby_stats_{name}_keys",
        family="shuffle",
        tables=(table,),
        build=build_with(table, key, value),
        reference=reference_with(table, key, value),
        description=f"sum, mean, std, min, max, count, approx. median of {value} by {key} ({about})",
        float_rel_tol=1e-2,
    )
    for name, (table, key, value, about) in CARDINALITIES.items()
]
