"""The output fingerprint must catch wrong results and accept rounding noise, and Spark and Python must compute
the same one. The wrong results are built from groupby_sum_mean's real output (100 groups at 1e4): two keys'
means swapped, one sign flipped, the means shuffled across keys, +5 on one mean and -5 on another, one mean
lost to null. The checksum these replaced (sums of absolute values per column) passed all but the null."""

import datetime
import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from harness import fingerprint, workloads
from harness.fingerprint import Tolerance, compare, compare_rows, spark_fingerprint, table_fingerprint


@pytest.fixture(scope="module")
def groupby_output(spark, tiny_tables):
    workload = workloads.get("groupby_sum_mean")
    tables = {t: spark.read.parquet(str(tiny_tables[t])) for t in workload.tables}
    real = workload.build(tables)
    frame = real.toPandas().sort_values("id3").reset_index(drop=True)
    frame.attrs = {}  # Spark Connect's plan metrics: not part of the output
    return real, frame


def _swap(f):
    f.loc[[3, 7], "v3_mean"] = f.loc[[7, 3], "v3_mean"].to_numpy()
    return f


def _flip(f):
    f.loc[11, "v3_mean"] = -f.loc[11, "v3_mean"]
    return f


def _shuffle(f):
    f["v3_mean"] = np.random.default_rng(5).permutation(f["v3_mean"].to_numpy())
    return f


def _compensate(f):
    f.loc[2, "v3_mean"] += 5
    f.loc[40, "v3_mean"] -= 5
    return f


def _null(f):
    f.loc[9, "v3_mean"] = None
    return f


WRONG = {"two keys' means swapped": _swap, "one sign flipped": _flip, "means shuffled across keys": _shuffle,
         "+5 on one mean, -5 on another": _compensate, "one mean lost to null": _null}


def test_the_fingerprint_of_an_output_survives_a_round_trip_exactly(spark, groupby_output):
    real, frame = groupby_output
    assert compare(spark_fingerprint(real), spark_fingerprint(spark.createDataFrame(frame)), Tolerance(0, 0)) == []


@pytest.mark.parametrize("case", WRONG)
def test_a_wrong_result_is_caught_by_the_fingerprint_and_the_rows(spark, groupby_output, case):
    real, frame = groupby_output
    wrong = WRONG[case](frame.copy())
    problems = compare(spark_fingerprint(real), spark_fingerprint(spark.createDataFrame(wrong)), Tolerance())
    assert problems and all("'v3_mean'" in p for p in problems), problems
    rows = compare_rows(pa.Table.from_pandas(frame), pa.Table.from_pandas(wrong), Tolerance())
    assert rows and rows[0].startswith("row ") and "v3_mean=" in rows[0]


def test_one_ulp_of_noise_from_another_summation_order_is_accepted(spark, groupby_output):
    real, frame = groupby_output
    noisy = frame.assign(v3_mean=np.nextafter(frame["v3_mean"].to_numpy(), np.inf))
    assert compare(spark_fingerprint(real), spark_fingerprint(spark.createDataFrame(noisy)), Tolerance()) == []
    assert compare_rows(pa.Table.from_pandas(frame), pa.Table.from_pandas(noisy), Tolerance()) == []


def test_the_order_of_rows_does_not_matter(spark, groupby_output):
    real, _ = groupby_output
    assert compare(spark_fingerprint(real), spark_fingerprint(real.repartition(3).orderBy("v3_mean")), Tolerance()) == []


def test_an_exact_value_changed_or_a_row_lost_is_caught(spark, groupby_output):
    real, frame = groupby_output
    changed = frame.copy()
    changed.loc[0, "v1_sum"] += 1
    assert any("row hashes differ" in p for p in compare(spark_fingerprint(real), spark_fingerprint(spark.createDataFrame(changed)), Tolerance()))
    assert any(p.startswith("rows:") for p in compare(spark_fingerprint(real), spark_fingerprint(real.limit(99)), Tolerance()))


def test_a_relative_tolerance_alone_would_fail_at_zero_but_the_absolute_part_does_not():
    zeros = pa.table({"k": [1, 2], "x": [0.0, 0.0]})
    tiny = pa.table({"k": [1, 2], "x": [1e-13, -1e-13]})
    assert compare(table_fingerprint(zeros), table_fingerprint(tiny), Tolerance(rel=1e-9, abs=1e-12)) == []
    assert compare(table_fingerprint(zeros), table_fingerprint(tiny), Tolerance(rel=1e-9, abs=0.0))


def test_spark_and_python_compute_the_same_fingerprint(spark):
    frame = pd.DataFrame({
        "i": pd.array([1, None, -7], dtype="Int64"), "s": ["a", None, "ünïcode"], "b": [True, False, True],
        "d": [datetime.date(2026, 1, 1), datetime.date(1970, 1, 2), None], "x": [0.5, float("nan"), -2.25],
        "tokens": [["a", "b"], [], None], "xs": [[1.0, -2.0], [3.5], None],
    })
    schema = "i bigint, s string, b boolean, d date, x double, tokens array<string>"
    scalars = frame.drop(columns="xs")  # summed by Spark's own aggregation: its xxhash64, the same as ours
    for chosen, types in ((scalars, schema), (frame, f"{schema}, xs array<double>")):  # with floating arrays:
        from_spark = spark_fingerprint(spark.createDataFrame(chosen, types))  # summed in Spark's Python workers
        from_python = table_fingerprint(pa.Table.from_pandas(chosen, preserve_index=False))
        assert (from_spark["hash_lo"], from_spark["hash_hi"]) == (from_python["hash_lo"], from_python["hash_hi"])
        assert compare(from_spark, from_python, Tolerance(0, 0)) == []
    assert from_python["floats"]["x"]["missing"] == 1 and from_python["floats"]["xs"]["missing"] == 1


def test_the_vectorized_string_hash_is_xxhash64():
    """Every step of the algorithm (32-byte stripes, 8-byte words, a 4-byte word, single bytes), multi-byte
    characters, a sliced array and a dictionary-encoded one."""
    import random
    import string

    import xxhash

    rng = random.Random(1)
    values = ["".join(rng.choice(string.ascii_letters + "é漢") for _ in range(rng.choice(
        [0, 1, 3, 4, 5, 7, 8, 9, 15, 16, 31, 32, 33, 63, 64, 65, 100, 257]))) for _ in range(2000)]
    expected = np.array([xxhash.xxh64_intdigest(v.encode(), seed=12345) for v in values], dtype=np.uint64)
    array = pa.array(values)
    assert (fingerprint._xxh64_strings(array, 12345) == expected).all()
    assert (fingerprint._xxh64_strings(array.slice(100, 500), 12345) == expected[100:600]).all()
    with_nulls = pa.array(["a", None, "b", "a"])
    assert (fingerprint._column_hashes(with_nulls.dictionary_encode(), 5) == fingerprint._column_hashes(with_nulls, 5)).all()


def test_vectors_are_compared_by_their_entries_without_densifying(spark):
    from pyspark.ml.linalg import Vectors, VectorUDT
    from pyspark.sql.types import LongType, StructField, StructType

    schema = StructType([StructField("id", LongType()), StructField("vec", VectorUDT())])
    sparse = spark.createDataFrame([(1, Vectors.sparse(4, {1: -3.0, 3: 2.0})), (2, Vectors.sparse(3, {0: 1.0}))], schema)
    dense = spark.createDataFrame([(1, Vectors.dense([0.0, -3.0, 0.0, 2.0])), (2, Vectors.dense([1.0, 0.0, 0.0]))], schema)
    moved = spark.createDataFrame([(1, Vectors.sparse(4, {1: 2.0, 3: -3.0})), (2, Vectors.sparse(3, {0: 1.0}))], schema)
    base = spark_fingerprint(sparse)
    assert base["floats"]["vec"]["count"] == 3 and base["floats"]["vec"]["sum_abs"] == 6.0
    assert compare(base, spark_fingerprint(dense), Tolerance()) == []  # the same vectors, stored otherwise
    assert compare(base, spark_fingerprint(moved), Tolerance())  # values moved between indices


def test_a_small_output_collected_once_has_sparks_fingerprint(spark):
    """spark_output fingerprints a small output from its collected rows: the same fingerprint Spark computes,
    vectors, arrays, dates and nulls included."""
    from pyspark.ml.linalg import Vectors, VectorUDT
    from pyspark.sql.types import ArrayType, DateType, DoubleType, LongType, StringType, StructField, StructType

    schema = StructType([StructField("id", LongType()), StructField("s", StringType()), StructField("d", DateType()),
                         StructField("x", DoubleType()), StructField("y", DoubleType()),
                         StructField("xs", ArrayType(DoubleType())), StructField("vec", VectorUDT())])
    df = spark.createDataFrame([
        (1, "a", datetime.date(2026, 1, 1), 0.5, 2.0, [1.0, -2.0], Vectors.sparse(4, {1: -3.0, 3: 2.0})),
        (2, None, None, None, -1.5, None, Vectors.dense([1.0, 0.0, 4.0])),
        (3, "ü", datetime.date(1970, 1, 2), float("nan"), 7.25, [], None)], schema)
    found, rows, table = fingerprint.spark_output(df, limit=10)
    assert rows == 3 and table is not None and compare(spark_fingerprint(df), found, Tolerance(0, 0)) == []
    assert found["floats"]["vec"]["kind"] == "vector" and found["floats"]["x"]["cross"]["w"] > 0
    large, rows, table = fingerprint.spark_output(df, limit=2)  # over the limit: Spark's own aggregation
    assert rows == 3 and table is None and compare(large, found, Tolerance(0, 0)) == []


def test_a_type_the_python_side_cannot_compare_is_named():
    table = pa.table({"m": pa.array([{"a": 1}], pa.struct([("a", pa.int64())]))})
    with pytest.raises(fingerprint.FingerprintError, match="column 'm' has type struct"):
        table_fingerprint(table)


def test_the_bound_grows_with_the_values_compared():
    a = {"count": 10, "sum_abs": 1000.0, "sum_sq": 1e5}
    b = dict(a)
    bound = fingerprint._bound("sum", a, b, Tolerance(rel=1e-9, abs=1e-9))
    assert math.isclose(bound, 10 * 1e-9 + 1e-9 * 1000 + 2 * 10 * 2**-52 * 1000)


def test_tolerances_must_be_numbers_of_zero_or_more():
    with pytest.raises(ValueError, match="rel must be a number of 0 or more"):
        Tolerance(rel=-1)


def _features(rows: int = 200) -> pd.DataFrame:
    """A feature query's output: floating columns only, no key."""
    rng = np.random.default_rng(3)
    return pd.DataFrame({"a": rng.normal(size=rows), "b": rng.normal(size=rows) * 100, "c": rng.random(rows)})


def _table(frame: pd.DataFrame) -> pa.Table:
    return pa.Table.from_pandas(frame, preserve_index=False)


def test_values_swapped_between_rows_are_caught_without_an_exact_column():
    """Every plain, squared and weighted sum balances when column a's values of two rows trade places (no exact
    column gives a row weight); the cross sum ties each value to its row's other floating values."""
    right = _features()
    wrong = right.copy()
    wrong.loc[[5, 17], "a"] = wrong.loc[[17, 5], "a"].to_numpy()
    expected, actual = table_fingerprint(_table(right)), table_fingerprint(_table(wrong))
    problems = compare(expected, actual, Tolerance())
    assert problems and all("cross sum" in p for p in problems) and any("'a'" in p for p in problems)
    shuffled = right.sample(frac=1.0, random_state=1)  # the same rows in another order: accepted
    assert compare(expected, table_fingerprint(_table(shuffled)), Tolerance(0, 0)) == []


def test_noise_within_the_tolerance_still_passes_the_cross_sum():
    right = _features()
    noisy = right * (1 + 1e-12 * np.random.default_rng(9).standard_normal(right.shape))
    assert compare(table_fingerprint(_table(right)), table_fingerprint(_table(noisy)),
                   Tolerance(rel=1e-9, abs=1e-12)) == []


def test_spark_computes_the_same_cross_sums(spark):
    frame = _features(50)
    frame.loc[3, "b"] = float("nan")
    from_spark = spark_fingerprint(spark.createDataFrame(frame))
    from_python = table_fingerprint(pa.Table.from_pandas(frame, preserve_index=False))
    assert compare(from_spark, from_python, Tolerance(1e-12, 1e-12)) == []
    assert from_spark["floats"]["a"]["cross"]["cross"] == pytest.approx(from_python["floats"]["a"]["cross"]["cross"])


def test_an_output_whose_floats_cannot_be_tied_to_rows_says_so():
    arrays = pa.table({"xs": [[1.0, 2.0], [3.0]]})
    assert table_fingerprint(arrays)["weaker"].startswith("floating arrays or vectors without an exact column")
    keyed = pa.table({"k": [1, 2], "xs": [[1.0, 2.0], [3.0]]})
    assert "weaker" not in table_fingerprint(keyed)
