"""Every registered workload on tiny data, against its pandas reference (computed without Spark)."""

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from harness import HarnessError, workloads
from harness.config import scale_rows

from conftest import TINY

REGISTRY = workloads.registry()


def canonical(df: pd.DataFrame) -> pd.DataFrame:
    """Same columns in the same order, rows sorted by every column: order is not part of these results."""
    df = df[sorted(df.columns)].copy()
    for column in df.columns:
        if isinstance(df[column].dtype, pd.CategoricalDtype) or df[column].dtype == object:
            df[column] = df[column].astype(str)
    return df.sort_values(list(df.columns)).reset_index(drop=True)


def spark_tables(spark, tiny_tables, workload):
    return {t: spark.read.parquet(str(tiny_tables[t])) for t in workload.tables}


def test_registry_has_one_workload_per_family_at_least():
    assert {w.family for w in REGISTRY.values()} == set(workloads.FAMILIES)
    assert all(w.reference is not None for w in REGISTRY.values())


@pytest.mark.parametrize("name", list(REGISTRY))
def test_output_matches_the_pandas_reference(spark, tiny_tables, name):
    workload = REGISTRY[name]
    actual = canonical(workload.build(spark_tables(spark, tiny_tables, workload)).toPandas())
    expected = canonical(workload.reference({t: pq.read_table(tiny_tables[t]).to_pandas() for t in workload.tables}))
    assert list(actual.columns) == list(expected.columns)
    assert len(actual) == len(expected) > 0
    for column in actual.columns:
        if np.issubdtype(expected[column].dtype, np.floating):
            np.testing.assert_allclose(actual[column], expected[column], rtol=1e-9, err_msg=column)
        else:
            assert (actual[column].astype(str) == expected[column].astype(str)).all(), column


@pytest.mark.parametrize("name", list(REGISTRY))
def test_checksum_of_the_output_equals_checksum_of_the_reference(spark, tiny_tables, name):
    workload = REGISTRY[name]
    output = workload.build(spark_tables(spark, tiny_tables, workload))
    reference = workload.reference({t: pq.read_table(tiny_tables[t]).to_pandas() for t in workload.tables})
    for column in reference.columns:
        if isinstance(reference[column].dtype, pd.CategoricalDtype):
            reference[column] = reference[column].astype(str)
    as_spark = spark.createDataFrame(reference).select(*output.columns)
    as_spark = as_spark.select(*[as_spark[c].cast(t) for c, t in output.dtypes])
    assert workloads.compare(workloads.checksum(output), workloads.checksum(as_spark), workload.float_rel_tol) == []


def test_checksum_notices_a_changed_value_a_lost_row_and_a_float_drift(spark):
    from pyspark.sql import functions as F

    base = spark.range(1000).select("id", (F.col("id") % 7).cast("string").alias("k"), (F.col("id") * 0.5).alias("x"))
    reference = workloads.checksum(base)
    assert reference["rows"] == 1000 and reference["floats"]["x"] == {"abs_sum": 249750.0, "count": 1000}
    assert workloads.compare(reference, workloads.checksum(base.orderBy(F.desc("id"))), 1e-9) == []
    changed = base.withColumn("k", F.when(F.col("id") == 5, "other").otherwise(F.col("k")))
    assert any(p.startswith("hash") for p in workloads.compare(reference, workloads.checksum(changed), 1e-9))
    assert any(p.startswith("rows") for p in workloads.compare(reference, workloads.checksum(base.limit(999)), 1e-9))
    drift = workloads.checksum(base.withColumn("x", F.col("x") * 1.001))
    assert any("sum of |values|" in p for p in workloads.compare(reference, drift, 1e-9))
    assert workloads.compare(reference, drift, 1e-2) == []


def test_rows_processed_counts_every_input_table():
    assert REGISTRY["groupby_sum_mean"].rows(scale_rows(TINY)) == 10_000
    assert REGISTRY["join_medium_inner"].rows(scale_rows(TINY)) == 10_000 + 10


def test_bad_declarations_are_refused():
    with pytest.raises(HarnessError, match="family must be one of"):
        workloads.Workload("x", "sorting", ("groupby",), build=None, reference=None, description="")
    with pytest.raises(HarnessError, match="unknown table"):
        workloads.Workload("x", "join", ("nope",), build=None, reference=None, description="")
    with pytest.raises(HarnessError, match="no workload named 'nope'"):
        workloads.get("nope")
