"""Every registered workload on tiny data, against its pandas reference (computed without Spark)."""

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from harness import HarnessError, workloads

REGISTRY = workloads.registry()
WITH_REFERENCE = [name for name, w in REGISTRY.items() if w.reference is not None]


def pandas_tables(tiny_tables, workload):
    tables = {}
    for t in workload.tables:
        df = pq.read_table(tiny_tables[t]).to_pandas()
        for column in df.columns:
            if isinstance(df[column].dtype, pd.CategoricalDtype):
                df[column] = df[column].astype(str)
        tables[t] = df
    return tables


def as_mapping(value):
    """A vector, array or {index: value} as {index: value} of its non-zero entries."""
    if hasattr(value, "toArray"):
        value = value.toArray()
    if isinstance(value, dict):
        return {int(k): float(v) for k, v in value.items() if v != 0}
    return {i: float(v) for i, v in enumerate(np.asarray(value, dtype=float)) if v != 0}


def plain(value):
    if isinstance(value, (list, np.ndarray)) and len(value) and isinstance(value[0], str):
        return " ".join(value)
    return value


def canonical(df: pd.DataFrame, vector_columns) -> pd.DataFrame:
    """Columns in name order, rows sorted by the scalar columns: row order is not part of these results."""
    df = df[sorted(df.columns)].copy()
    for column in df.columns:
        if column in vector_columns:
            df[column] = df[column].map(as_mapping)
        else:
            df[column] = df[column].map(plain)
    scalars = [c for c in df.columns if c not in vector_columns]
    return df.sort_values(scalars, na_position="first").reset_index(drop=True)


def assert_same(actual: pd.DataFrame, expected: pd.DataFrame, rel_tol=1e-9):
    assert list(actual.columns) == list(expected.columns)
    assert len(actual) == len(expected) > 0
    for column in actual.columns:
        a, e = actual[column], expected[column]
        if isinstance(e.iloc[0], dict):
            for got, want in zip(a, e):
                assert got.keys() == want.keys(), column
                np.testing.assert_allclose([got[k] for k in want], list(want.values()), rtol=rel_tol, err_msg=column)
        elif pd.api.types.is_float_dtype(e) or pd.api.types.is_float_dtype(a):
            np.testing.assert_allclose(a.astype(float), e.astype(float), rtol=rel_tol, err_msg=column)
        else:
            assert (a.astype(str) == e.astype(str)).all(), (column, a[a.astype(str) != e.astype(str)].head())


def spark_output(spark, tiny_tables, workload):
    tables = {t: spark.read.parquet(str(tiny_tables[t])) for t in workload.tables}
    with workloads.sql_settings(spark, workload):
        df = workload.build(tables)
        vectors = {c for c, t in df.dtypes if t == "vector"}
        return df.toPandas(), vectors


def test_registry_covers_every_family_and_built_ins_have_references():
    assert {w.family for w in REGISTRY.values()} == set(workloads.FAMILIES)
    built_in = [w for w in REGISTRY.values() if w.source.startswith("harness.workloads")]
    assert len(built_in) >= 30 and all(w.reference is not None for w in built_in)


@pytest.mark.parametrize("name", WITH_REFERENCE)
def test_output_matches_the_pandas_reference(spark, tiny_tables, name):
    workload = REGISTRY[name]
    output, vectors = spark_output(spark, tiny_tables, workload)
    expected = workload.reference(pandas_tables(tiny_tables, workload))
    vectors |= {c for c in expected.columns if len(expected) and isinstance(expected[c].iloc[0], (dict, np.ndarray))}
    tolerance = 1e-9 if "median" not in output.columns else 1e-12
    assert_same(canonical(output, vectors), canonical(expected, vectors), tolerance)


@pytest.mark.parametrize("name", WITH_REFERENCE)
def test_checksum_is_stable_and_order_insensitive(spark, tiny_tables, name):
    workload = REGISTRY[name]
    tables = {t: spark.read.parquet(str(tiny_tables[t])) for t in workload.tables}
    with workloads.sql_settings(spark, workload):
        first = workloads.checksum(workload.build(tables))
        shuffled = workloads.checksum(workload.build(tables).repartition(3))
    assert first["rows"] > 0
    assert workloads.compare(first, shuffled, workload.float_rel_tol) == []


def test_the_example_sql_workload_matches_pandas(spark, tiny_tables):
    output, _ = spark_output(spark, tiny_tables, REGISTRY["top_keys_by_value"])
    groupby = pandas_tables(tiny_tables, REGISTRY["top_keys_by_value"])["groupby"]
    expected = groupby.groupby("id1", as_index=False).agg(v3_sum=("v3", "sum"), n=("v3", "size"))
    expected = expected.nlargest(10, "v3_sum")
    assert_same(canonical(output, set()), canonical(expected, set()))


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


def test_checksum_sums_float_arrays_and_sparse_vectors_without_densifying(spark):
    from pyspark.ml.linalg import Vectors, VectorUDT
    from pyspark.sql.types import ArrayType, DoubleType, LongType, StructField, StructType

    schema = StructType([StructField("id", LongType()), StructField("arr", ArrayType(DoubleType())),
                         StructField("vec", VectorUDT())])
    df = spark.createDataFrame([(1, [1.0, -2.0], Vectors.sparse(4, {1: -3.0})),
                                (2, [0.5], Vectors.dense([1.0, 0.0, 0.0, -0.5]))], schema)
    result = workloads.checksum(df)
    assert result["floats"]["arr"] == {"abs_sum": 3.5, "count": 3}
    assert result["floats"]["vec"] == {"abs_sum": 4.5, "count": 3}  # |values| and non-zero entries


def test_runtime_sql_settings_are_applied_then_restored(spark):
    workload = REGISTRY["join_skewed_aqe_off"]
    before = spark.conf.get("spark.sql.adaptive.skewJoin.enabled")
    with workloads.sql_settings(spark, workload):
        assert spark.conf.get("spark.sql.adaptive.skewJoin.enabled") == "false"
        assert spark.conf.get("spark.sql.autoBroadcastJoinThreshold") == "-1"
    assert spark.conf.get("spark.sql.adaptive.skewJoin.enabled") == before


def test_bad_declarations_are_refused(tmp_path, monkeypatch):
    with pytest.raises(HarnessError, match="family must be one of"):
        workloads.Workload("x", "sorting", ("groupby",), build=None, reference=None, description="")
    with pytest.raises(HarnessError, match="unknown table"):
        workloads.Workload("x", "join", ("nope",), build=None, reference=None, description="")
    with pytest.raises(HarnessError, match="lower_snake_case"):
        workloads.Workload("Bad Name", "join", ("groupby",), build=None, reference=None, description="")
    with pytest.raises(HarnessError, match="no workload named 'nope'"):
        workloads.get("nope")
    (tmp_path / "headless.sql").write_text("SELECT 1")
    monkeypatch.setenv(workloads.USER_DIR_ENV, str(tmp_path))
    workloads.registry.cache_clear()
    try:
        with pytest.raises(HarnessError, match=r"headless\.sql: a SQL workload starts with '-- family:"):
            workloads.registry()
        (tmp_path / "headless.sql").write_text("-- family: shuffle\n-- tables: groupby\nSELECT 1")
        (tmp_path / "again.sql").write_text("-- family: shuffle\n-- tables: groupby\nSELECT 1")
        (tmp_path / "groupby_sum_mean.sql").write_text("-- family: shuffle\n-- tables: groupby\nSELECT 1")
        with pytest.raises(HarnessError, match="two workloads are named 'groupby_sum_mean'"):
            workloads.registry()
    finally:
        workloads.registry.cache_clear()


def test_selection_by_name_and_pattern():
    assert workloads.selected(["ml_pipeline"]) == ["ml_pipeline"]
    joins = workloads.selected(["join_*"])
    assert len(joins) >= 10 and all(n.startswith("join_") for n in joins)
    assert workloads.selected(["*"]) == list(REGISTRY)
    with pytest.raises(HarnessError, match=r"no workload matches 'joins_\*'"):
        workloads.selected(["joins_*"])
