"""Every registered workload on tiny data, against its pandas reference (computed without Spark)."""

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from harness import HarnessError, fingerprint, session, workloads
from harness import trial

from conftest import TINY

REGISTRY = workloads.registry()
# Workloads whose reference is their dataframe form are checked under the pandas engine, against Spark's output.
WITH_REFERENCE = [name for name, w in REGISTRY.items() if w.reference is not None and w.reference is not w.frame]
# Order-insensitivity on the outputs with arrays, vectors and an approximate median; test_fingerprint has the rest.
REPARTITIONED = ["ml_pipeline", "text_clean_tokenize", "text_ngrams_tfidf", "groupby_stats_100_keys", "top2_per_group"]


def paths(spark, settings, workload):
    """The workload's tables at the tiny scale (a derived one, such as handoff shards, written by Spark first)."""
    return trial.table_paths(workload, TINY, settings, spark)


def pandas_tables(spark, settings, workload):
    tables = {}
    for t, path in paths(spark, settings, workload).items():
        df = pq.read_table(path).to_pandas()
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


def spark_output(spark, settings, workload):
    session.activate(spark)  # the trials of other tests opened sessions of their own: ML fits go to the active one
    tables = {t: spark.read.parquet(p) for t, p in paths(spark, settings, workload).items()}
    with workloads.sql_settings(spark, workload):
        if workload.prepare:
            workload.prepare(spark, tables)
        df = workload.build(tables)
        vectors = {c for c, t in df.dtypes if t == "vector"}
        return df.toPandas(), vectors


def test_registry_covers_every_family_and_built_ins_have_references():
    assert {w.family for w in REGISTRY.values()} == set(workloads.FAMILIES)
    built_in = [w for w in REGISTRY.values() if w.source.startswith("harness.workloads")]
    assert len(built_in) >= 30 and all(w.reference is not None for w in built_in)


@pytest.mark.parametrize("name", WITH_REFERENCE)
def test_output_matches_the_pandas_reference(spark, settings, tiny_tables, name):
    workload = REGISTRY[name]
    output, vectors = spark_output(spark, settings, workload)
    expected = workload.reference(pandas_tables(spark, settings, workload))
    vectors |= {c for c in expected.columns if len(expected) and isinstance(expected[c].iloc[0], (dict, np.ndarray))}
    tolerance = 1e-9 if "median" not in output.columns else 1e-12
    assert_same(canonical(output, vectors), canonical(expected, vectors), tolerance)


@pytest.mark.parametrize("name", REPARTITIONED)
def test_the_fingerprint_is_stable_and_order_insensitive(spark, settings, tiny_tables, name):
    workload = REGISTRY[name]
    session.activate(spark)
    tables = {t: spark.read.parquet(p) for t, p in paths(spark, settings, workload).items()}
    with workloads.sql_settings(spark, workload):
        first = fingerprint.spark_fingerprint(workload.build(tables))
        shuffled = fingerprint.spark_fingerprint(workload.build(tables).repartition(3))
    assert first["rows"] > 0
    assert fingerprint.compare(first, shuffled, workload.tolerance) == []


def test_the_example_sql_workload_matches_pandas(spark, settings, tiny_tables):
    workload = REGISTRY["top_keys_by_value"]
    output, _ = spark_output(spark, settings, workload)
    groupby = pandas_tables(spark, settings, workload)["groupby"]
    expected = groupby.groupby("id1", as_index=False).agg(v3_sum=("v3", "sum"), n=("v3", "size"))
    expected = expected.nlargest(10, "v3_sum")
    assert_same(canonical(output, set()), canonical(expected, set()))


@pytest.fixture(scope="module")
def every_engine(e2e):
    """Every workload under every engine that can run here, from the one end-to-end run the tests share (its
    records, not a rerun): its cases at the tiny scale, by workload."""
    return {case.workload: case for case in e2e.found.cases if case.scale == TINY}


@pytest.mark.parametrize("name", list(REGISTRY))
def test_comet_runs_every_workload_with_spark_s_output(every_engine, name):
    case = every_engine[name]
    cpu, comet = case.engine("cpu"), case.engine("comet")
    assert cpu.record.status == "ok", cpu.record.reason
    assert comet.record.status == "ok" and comet.agrees, comet.record.reason or comet.problems
    assert comet.record.plan.get("accelerator") == "Comet"


@pytest.mark.parametrize("name", [n for n in REGISTRY if REGISTRY[n].frame])
def test_the_dataframe_form_under_pandas_and_dask_agrees_with_spark(every_engine, name):
    case = every_engine[name]
    for engine in ("pandas", "dask"):
        record = case.engine(engine).record
        if engine == "dask" and REGISTRY[name].frame_eager_only:
            assert record.status == "undefined" and "needs eager pandas" in record.reason
            continue
        assert record.status == "ok" and case.engine(engine).agrees, record.reason or case.engine(engine).problems
        assert record.session["mode"] in ("pandas", "cluster")  # Dask on the run's own (TLS) cluster


def test_workloads_without_a_dataframe_form_are_not_defined_for_dataframe_engines(every_engine):
    undefined = {name for name, case in every_engine.items() if name in REGISTRY
                 and case.engine("pandas") and case.engine("pandas").record.status == "undefined"}
    assert undefined == {name for name in REGISTRY if not REGISTRY[name].frame}


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
