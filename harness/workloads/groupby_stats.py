"""Summary statistics per key at three cardinalities: 100 keys, N/100 keys, and about one key per row.

sum, mean, sample standard deviation, min, max, count and an approximate median. The median is approximate
(Spark's percentile_approx; the GPU uses a t-digest), so engines are compared within 1%.
"""

import numpy as np
from pyspark.sql import functions as F

from ..fingerprint import Tolerance
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


def frame_with(table, key, value):
    def frame(tables):
        grouped = tables[table].groupby(key, as_index=False, observed=True)[value]
        return grouped.agg(sum="sum", mean="mean", std="std", min="min", max="max", count="size",
                           median=lower_median)

    return frame


def declare(name, table, key, value, about):
    form = frame_with(table, key, value)
    return Workload(
        name=f"groupby_stats_{name}_keys",
        family="shuffle",
        tables=(table,),
        build=build_with(table, key, value),
        reference=form,
        frame=form,
        frame_eager_only="the exact lower median per group is a Python function, which Dask's groupby cannot run",
        description=f"sum, mean, std, min, max, count, approx. median of {value} by {key} ({about})",
        tolerance=Tolerance(rel=1e-2, abs=1e-9),
    )


WORKLOADS = [declare(name, *spec) for name, spec in CARDINALITIES.items()]
