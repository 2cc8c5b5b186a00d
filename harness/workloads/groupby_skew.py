"""The same aggregation over uniform keys and over Zipf-skewed keys with the same range (N/10 values)."""

from pyspark.sql import functions as F

from . import Workload


def build_with(key):
    return lambda tables: tables["features"].groupBy(key).agg(F.sum("x1").alias("x1_sum"),
                                                              F.count(F.lit(1)).alias("count"))


def frame_with(key):
    def frame(tables):
        return tables["features"].groupby(key).agg(x1_sum=("x1", "sum"), count=("x1", "size")).reset_index()

    return frame


def declare(kind, key):
    form = frame_with(key)
    return Workload(
        name=f"groupby_{kind}_keys",
        family="shuffle",
        tables=("features",),
        build=build_with(key),
        reference=form,
        frame=form,
        description=f"sum(x1) and count by a {kind} key (N/10 values{', the top one holding ~20% of rows' if kind == 'skewed' else ''})",
    )


WORKLOADS = [declare(kind, key) for kind, key in (("uniform", "key_uniform"), ("skewed", "key_zipf"))]
