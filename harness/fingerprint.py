"""Output fingerprints: the check that two engines produced the same rows, which a wrong result cannot pass.

A fingerprint is computed where the output is (by Spark in one aggregation; with numpy in Spark's Python
workers for an output with floating arrays or vectors; with numpy for a dataframe engine's output, on Dask's
workers partition by partition, the partial sums added up) and is the same for the same rows in any order:

* every row gets a 64-bit hash of its exact columns (integers, booleans, strings, dates; arrays of them):
  xxHash64 of each column with a per-column salt (Spark's ``xxhash64``), XOR-ed across columns. The sums of the hashes'
  low and high 32 bits over all rows are compared exactly, so one changed exact value anywhere is caught;
* every floating value (scalars, elements of arrays, entries of ML vectors) is summed plainly, as absolute
  value, squared, and **weighted by a pseudo-random weight in [0.5, 1.5) drawn from its row's hash** (and
  its position in the array or vector). The weights tie each value to its row: moving values between rows,
  swapping two groups' results or flipping a sign changes the weighted sum even where plain sums balance.
  Missing values (null or NaN: pandas cannot tell them apart) and infinities are counted exactly.
* every floating scalar is also tied to **the other floating values of its row**: with two or more floating
  columns, each column's ``cross`` sum adds its value times a fixed weighted sum of the row's other floating
  values. Swapping one column's values between two rows changes it unless the rows' other values are equal
  too, so the check holds where no exact column (and so no row weight) exists, as in a feature query's
  output, or where rows share their exact values. Floating arrays and vectors in an output without exact
  columns are tied to their rows by position only: the fingerprint then says so (``weaker``), and outputs
  small enough are compared row by row anyway.

Floating sums are compared within a tolerance derived from a per-value one, ``Tolerance(rel, abs)``: if
every value may differ by ``abs + rel * |v|``, a sum of n values may differ by ``n * abs + rel * sum|v|``
(scaled for the weights and squares), plus the worst-case rounding of summing n doubles in another order.
For outputs small enough to collect (``ROW_LIMIT``), the rows themselves are also kept, sorted, and compared
one by one (as NVIDIA's NDS validation does), so a mismatch names the first rows that differ.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from functools import cache

import numpy as np

VERSION = 3
ROW_LIMIT = 100_000  # outputs up to this many rows are also compared row by row
EPSILON = 2.0 ** -52
PHI = 0.6180339887498949  # spreads positions in an array or vector over the weights
_WEIGHT_BITS = 0xFFFFF
_SEP = "\u001f"  # joins the elements of an exact array into one hashed string
_NULL_ELEMENT = "\u0000"
_STATS = ("sum", "sum_abs", "sum_sq", "weighted")
# The cross sum of a floating column c and what bounds its tolerance: R is the weighted sum of the row's other
# floating values, U the same of their absolute values (see _cross_bound).
_CROSS = ("cross", "abs_r", "v_u", "abs_vr", "u")
WEAKER = ("floating arrays or vectors without an exact column are tied to their rows by position only: values "
          "moved between rows at the same position are not caught above the row-by-row limit")
_COUNTS = ("count", "missing", "posinf", "neginf")


class FingerprintError(ValueError):
    """An output has a column type the fingerprint cannot compare; the message names it."""


@dataclass(frozen=True)
class Tolerance:
    """How far one floating value may differ between engines: ``abs + rel * |value|``."""

    rel: float = 1e-9
    abs: float = 1e-9

    def __post_init__(self):
        for name in ("rel", "abs"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"a float tolerance's {name} must be a number of 0 or more, got {value!r}")

    def looser(self, other: "Tolerance") -> "Tolerance":
        return Tolerance(max(self.rel, other.rel), max(self.abs, other.abs))

    def to_json(self) -> dict:
        return {"rel": self.rel, "abs": self.abs}

    @classmethod
    def from_json(cls, data) -> "Tolerance":
        return cls(**data) if isinstance(data, dict) else cls()


# ---------------------------------------------------------------------------------------------- column kinds

def spark_kind(type_string: str) -> str:
    """'exact', 'float' (a scalar), 'floats' (an array of them) or 'vector' (Spark ML) for a Spark type."""
    if type_string in ("float", "double") or type_string.startswith("decimal"):
        return "float"
    if type_string in ("array<float>", "array<double>"):
        return "floats"
    if type_string == "vector":
        return "vector"
    return "exact"


# ---------------------------------------------------------------------------------------------- Spark side


def spark_fingerprint(df) -> dict:
    """The fingerprint of a Spark DataFrame (classic or Spark Connect), computed where it is. Exact and floating
    scalar columns: by Spark, in one aggregation (10M rows with three string columns in about a run's time, where
    sending them to Python took 4x). An output with floating arrays or ML vectors, whose elements are many: in
    Spark's Python workers, each partition as Arrow batches fingerprinted by the same code as a dataframe
    engine's output, only the partial sums coming back (8x faster than exploding the elements in Spark, which
    had to read vectors through JSON)."""
    from pyspark.sql import functions as F

    kinds = {name: spark_kind(t) for name, t in df.dtypes}
    normalized = normalize_spark(df)
    if any(kind in ("floats", "vector") for kind in kinds.values()):
        return _fingerprint_in_workers(normalized, df)
    exact = [c for c in sorted(kinds) if kinds[c] == "exact"]
    h = F.lit(0).cast("long")
    for salt, column in enumerate(exact, 1):
        h = h.bitwiseXOR(F.xxhash64(F.lit(salt), F.col(column)))
    row_weight = F.lit(0.5) + F.shiftrightunsigned(h, 12).bitwiseAND(_WEIGHT_BITS) / F.lit(float(_WEIGHT_BITS + 1))
    aggs = [F.count(F.lit(1)).alias("rows"),
            F.sum(h.bitwiseAND(0xFFFFFFFF)).alias("hash_lo"), F.sum(F.shiftrightunsigned(h, 32)).alias("hash_hi")]
    scalars = sorted(c for c in kinds if kinds[c] == "float")
    for column in scalars:
        aggs += _spark_float_aggs(F, column, row_weight)
    if len(scalars) >= 2:
        aggs += _spark_cross_aggs(F, scalars)
    row = normalized.agg(*aggs).first().asDict()
    floats = {c: {"kind": "float", **{stat: _plain(row[f"{stat}:{c}"]) for stat in (*_COUNTS, *_STATS)}}
              for c in scalars}
    if len(scalars) >= 2:
        for c in scalars:
            floats[c]["cross"] = {stat: _plain(row[f"{stat}:{c}"]) or 0.0 for stat in _CROSS}
            floats[c]["cross"]["w"] = _cross_weight_total(scalars, c)
    return _assembled(row["rows"], exact, row["hash_lo"] or 0, row["hash_hi"] or 0, floats)


def _fingerprint_in_workers(normalized, df) -> dict:
    import json

    parts = [json.loads(row[0]) for row in normalized.mapInArrow(_partition_fingerprints, "part string").collect()]
    if not parts:  # no rows at all: the kinds of the columns still count
        return table_fingerprint(spark_rows(df, 0))
    return merged(parts)


_BATCH_ROWS = 1 << 20  # rows fingerprinted at once in a worker: numpy's per-call cost is paid per batch


def _partition_fingerprints(batches):
    """In a Spark Python worker: one partition's Arrow batches -> one row, its fingerprint as JSON."""
    import json

    import pyarrow as pa

    parts, pending, count = [], [], 0
    for batch in batches:
        pending.append(batch)
        count += batch.num_rows
        if count >= _BATCH_ROWS:
            parts.append(table_fingerprint(_arrow_normalized(pa.Table.from_batches(pending))))
            pending, count = [], 0
    if pending:
        parts.append(table_fingerprint(_arrow_normalized(pa.Table.from_batches(pending))))
    if parts:
        yield pa.RecordBatch.from_pydict({"part": [json.dumps(merged(parts))]})


def merged(parts: list[dict]) -> dict:
    """The fingerprint of the union of disjoint row sets, from theirs: every count and sum adds up (the floating
    sums in another order, which the tolerance's rounding term allows for)."""
    first = parts[0]
    total = lambda key: sum(p[key] for p in parts)
    floats = {}
    for column, stats in first["floats"].items():
        floats[column] = {"kind": stats["kind"], **{stat: sum(p["floats"][column][stat] for p in parts)
                                                    for stat in (*_COUNTS, *_STATS)}}
        if "cross" in stats:
            floats[column]["cross"] = {**{stat: sum(p["floats"][column]["cross"][stat] for p in parts)
                                          for stat in _CROSS}, "w": stats["cross"]["w"]}
    return _assembled(total("rows"), first["exact_columns"], total("hash_lo"), total("hash_hi"), floats)


def _assembled(rows: int, exact: list[str], hash_lo: int, hash_hi: int, floats: dict) -> dict:
    found = {"version": VERSION, "rows": rows, "exact_columns": exact, "hash_lo": hash_lo, "hash_hi": hash_hi,
             "floats": floats}
    if not exact and any(f["kind"] != "float" for f in floats.values()):
        found["weaker"] = WEAKER
    return found


def _cross_weight(index: int) -> float:
    """The fixed weight in [0.5, 1.5) of the index-th floating scalar column (sorted by name) in a cross sum."""
    return (index + 1) * PHI % 1.0 + 0.5


def _cross_weight_total(scalars: list[str], column: str) -> float:
    return sum(_cross_weight(i) for i, c in enumerate(scalars) if c != column)


def _spark_cross_aggs(F, scalars: list[str]) -> list:
    """Per floating scalar column c: sum(v_c * R), sum|R|, sum(|v_c| U), sum|v_c R| and sum(U), where R and U are
    the weighted sums of the row's other floating values and of their absolute values (non-finite ones as 0)."""
    inf = F.lit(float("inf"))
    finite = {c: F.coalesce(F.when(~F.isnan(F.col(f"`{c}`")) & (F.col(f"`{c}`") != inf) & (F.col(f"`{c}`") != -inf),
                                   F.col(f"`{c}`")), F.lit(0.0)) for c in scalars}
    aggs = []
    for column in scalars:
        others = [(i, c) for i, c in enumerate(scalars) if c != column]
        r = sum((finite[c] * F.lit(_cross_weight(i)) for i, c in others[1:]), finite[others[0][1]] * F.lit(_cross_weight(others[0][0])))
        u = sum((F.abs(finite[c]) * F.lit(_cross_weight(i)) for i, c in others[1:]),
                F.abs(finite[others[0][1]]) * F.lit(_cross_weight(others[0][0])))
        v = finite[column]
        aggs += [F.sum(v * r).alias(f"cross:{column}"), F.sum(F.abs(r)).alias(f"abs_r:{column}"),
                 F.sum(F.abs(v) * u).alias(f"v_u:{column}"), F.sum(F.abs(v * r)).alias(f"abs_vr:{column}"),
                 F.sum(u).alias(f"u:{column}")]
    return aggs


def _classified(F, x, weight) -> dict:
    """Per value: whether it is missing (null or NaN) or infinite, and its finite part's contributions."""
    inf = F.lit(float("inf"))
    missing = x.isNull() | F.isnan(x)
    v = F.when(~missing & (x != inf) & (x != -inf), x)
    return {"count": F.when(v.isNotNull(), 1).otherwise(0), "missing": missing.cast("long"),
            "posinf": F.coalesce(x == inf, F.lit(False)).cast("long"),
            "neginf": F.coalesce(x == -inf, F.lit(False)).cast("long"),
            "sum": v, "sum_abs": F.abs(v), "sum_sq": v * v, "weighted": v * weight}


def _spark_float_aggs(F, column: str, row_weight) -> list:
    per_row = _classified(F, F.col(f"`{column}`"), row_weight)
    return [F.sum(expr).alias(f"{field}:{column}") for field, expr in per_row.items()]


def normalize_spark(df):
    """The output with every column in the form both sides hash the same way: exact values as longs,
    strings or bytes; floating scalars as doubles; arrays of floats as arrays of doubles; ML vectors as
    ``struct<indices: array<int>, values: array<double>>`` of their non-zero entries (never densified), made from
    their Arrow form by ``_arrow_normalized``."""
    from pyspark.sql import functions as F

    columns = []
    for name, type_string in df.dtypes:
        c = F.col(f"`{name}`")
        kind = spark_kind(type_string)
        if kind == "float":
            columns.append(c.cast("double").alias(name))
        elif kind == "floats":
            columns.append(c.cast("array<double>").alias(name))
        elif kind == "vector":
            columns.append(c)  # read from Arrow as its struct (type, size, indices, values): see _arrow_normalized
        elif type_string in ("boolean", "tinyint", "smallint", "int", "bigint"):
            columns.append(c.cast("long").alias(name))
        elif type_string == "date":
            columns.append(F.unix_date(c).cast("long").alias(name))
        elif type_string == "timestamp":
            columns.append(F.unix_micros(c).alias(name))
        elif type_string in ("string", "binary"):
            columns.append(c.alias(name))
        elif type_string.startswith("array<") and spark_kind(type_string[6:-1]) == "exact":
            texts = F.transform(c, lambda x: F.coalesce(x.cast("string"), F.lit(_NULL_ELEMENT)))
            joined = F.concat_ws(_SEP, texts)
            columns.append(F.when(c.isNull(), F.lit(None)).otherwise(joined).alias(name))
        else:
            columns.append(F.to_json(F.struct(c)).alias(name))  # structs, maps: compared as their JSON text
    return df.select(*columns)


def spark_rows(df, limit: int = ROW_LIMIT):
    """The normalized output as a pyarrow table, or None if it has more than `limit` rows. Vectors become their
    entries in Spark's Python workers (Spark Connect's client cannot read a null vector's struct); an output
    without vectors is read as it is (no Python worker to start)."""
    from pyspark.sql.types import ArrayType, DoubleType, IntegerType, StructField, StructType

    normalized = normalize_spark(df).limit(limit + 1)
    vectors = {name for name, t in df.dtypes if spark_kind(t) == "vector"}
    if vectors:
        entries = StructType([StructField("indices", ArrayType(IntegerType())),
                              StructField("values", ArrayType(DoubleType()))])
        schema = StructType([StructField(f.name, entries if f.name in vectors else f.dataType)
                             for f in normalized.schema.fields])
        normalized = normalized.mapInArrow(_normalized_batches, schema)
    table = normalized.toArrow()
    return None if table.num_rows > limit else table


def _normalized_batches(batches):
    """In a Spark Python worker: the batches with each vector as its entries."""
    import pyarrow as pa

    for batch in batches:
        yield from _arrow_normalized(pa.Table.from_batches([batch])).to_batches()


def spark_output(df, limit: int = ROW_LIMIT, small: bool = True) -> tuple[dict, int, object]:
    """(fingerprint, rows, the normalized rows when at most `limit`). An output expected to be small (at most
    `limit` rows: see ``Trial.expected_output_rows``) is collected once and fingerprinted here: the same
    fingerprint, the same hashes and weights over the same normalized columns. Any other, or one that turns out
    larger, is fingerprinted by Spark where it is, and collected as well only if it turns out small."""
    if small:
        rows = spark_rows(df, limit)
        if rows is not None:
            return table_fingerprint(rows), rows.num_rows, rows
    found = spark_fingerprint(df)
    rows = spark_rows(df, limit) if found["rows"] <= limit and not small else None
    return found, found["rows"], rows


def _plain(value):
    return value if value is None or isinstance(value, (int, float)) else float(value)


# ---------------------------------------------------------------------------------------------- Python side


def frame_output(frame, limit: int) -> tuple:
    """A pandas frame's (fingerprint, rows, the rows themselves when at most `limit`), as a trial records them."""
    table = frame_table(frame)
    return table_fingerprint(table), table.num_rows, table if table.num_rows <= limit else None


def table_fingerprint(table) -> dict:
    """The same fingerprint as ``spark_fingerprint``, of a pyarrow table (a dataframe engine's output)."""
    import pyarrow as pa

    kinds = {name: _arrow_kind(table.schema.field(name).type, name) for name in table.column_names}
    exact = sorted(c for c in kinds if kinds[c] == "exact")
    rows = table.num_rows
    h = np.zeros(rows, dtype=np.uint64)
    for salt, column in enumerate(exact, 1):
        h ^= _column_hashes(table.column(column).combine_chunks(), _salt_seed(salt))
    row_weight = 0.5 + ((h >> np.uint64(12)) & np.uint64(_WEIGHT_BITS)).astype(np.float64) / float(_WEIGHT_BITS + 1)
    floats = {}
    for column in sorted(c for c in kinds if kinds[c] != "exact"):
        array = table.column(column).combine_chunks()
        if kinds[column] == "float":
            floats[column] = {"kind": "float", **_float_stats(_floats(array), row_weight)}
            continue
        if kinds[column] == "vector":  # Spark ML vectors as normalize_spark writes them: their non-zero entries
            indices, entries = array.flatten()  # each null where the vector is null
            counts, values = _list_parts(entries.cast(pa.list_(pa.float64())))
            positions = _list_parts(indices.cast(pa.list_(pa.float64())))[1]
        else:
            counts, values = _list_parts(array.cast(pa.list_(pa.float64())))
            starts = np.cumsum(counts) - counts
            positions = np.arange(len(values)) - np.repeat(starts, counts)
        weights = (np.repeat(row_weight, counts) * (positions + 1) * PHI) % 1.0 + 0.5
        floats[column] = {"kind": kinds[column], **_float_stats(values, weights)}
        floats[column]["missing"] += array.null_count  # a null list counts as missing, as on the Spark side
    scalars = sorted(c for c in kinds if kinds[c] == "float")
    if len(scalars) >= 2:
        finite = {}
        for c in scalars:
            values = _floats(table.column(c).combine_chunks())
            finite[c] = np.where(np.isfinite(values), values, 0.0)
        for column in scalars:
            r = sum(finite[c] * _cross_weight(i) for i, c in enumerate(scalars) if c != column)
            u = sum(np.abs(finite[c]) * _cross_weight(i) for i, c in enumerate(scalars) if c != column)
            v = finite[column]
            floats[column]["cross"] = {"cross": float((v * r).sum()), "abs_r": float(np.abs(r).sum()),
                                       "v_u": float((np.abs(v) * u).sum()), "abs_vr": float(np.abs(v * r).sum()),
                                       "u": float(u.sum()), "w": _cross_weight_total(scalars, column)}
    return _assembled(rows, exact,
                      int((h & np.uint64(0xFFFFFFFF)).astype(np.int64).sum(dtype=np.int64)) if rows else 0,
                      int((h >> np.uint64(32)).astype(np.int64).sum(dtype=np.int64)) if rows else 0, floats)


def frame_part(frame, like) -> dict | None:
    """In a Dask worker: one partition's fingerprint, to be merged (None when it is empty). A column of nulls
    only, which Arrow cannot type, takes its type from `like` (the schema of the whole output)."""
    import pyarrow.types as t

    if len(frame) == 0:
        return None
    table = frame_table(frame)  # cuDF partitions come back to pandas there
    for i, field in enumerate(table.schema):
        if t.is_null(field.type) and field.name in like.names:
            table = table.set_column(i, field.name, table.column(i).cast(like.field(field.name).type))
    return table_fingerprint(table)


def frame_fingerprint(frame) -> dict:
    """A pandas (or cuDF, converted) DataFrame's fingerprint: categoricals as their values, index dropped."""
    return table_fingerprint(frame_table(frame))


def frame_table(frame):
    """A pandas DataFrame as the pyarrow table the fingerprint and the row comparison read."""
    import pandas as pd
    import pyarrow as pa

    if hasattr(frame, "to_pandas"):  # cuDF
        frame = frame.to_pandas()
    frame = frame.reset_index(drop=True)
    for column in frame.columns:
        if isinstance(frame[column].dtype, pd.CategoricalDtype):
            frame[column] = frame[column].astype(object)
    return pa.Table.from_pandas(frame, preserve_index=False)


_ARROW_VECTOR = {"type", "size", "indices", "values"}  # a Spark ML vector as Arrow reads it (its SQL type)


def _arrow_normalized(table):
    """Spark's normalized output as read through Arrow, with each ML vector as its non-zero entries."""
    import pyarrow.types as t

    for i, field in enumerate(table.schema):
        if t.is_struct(field.type) and {f.name for f in field.type} == _ARROW_VECTOR:
            table = table.set_column(i, field.name, _vector_entries(table.column(i).combine_chunks()))
    return table


def _vector_entries(array):
    """struct<indices: list<int32>, values: list<double>> of each vector's non-zero entries (NaN kept), from
    Spark's struct (type 1 dense: values at positions 0..size-1; type 0 sparse: indices and values)."""
    import pyarrow as pa

    valid = ~np.asarray(array.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    dense = np.asarray(array.field("type").fill_null(0).to_numpy(zero_copy_only=False)) == 1
    values, indices = array.field("values"), array.field("indices")
    value_offsets = np.asarray(values.offsets.to_numpy(), dtype=np.int64)
    lengths = np.where(valid & values.is_valid().to_numpy(zero_copy_only=False), np.diff(value_offsets), 0)
    row = np.repeat(np.arange(len(array)), lengths)
    position = np.arange(len(row)) - np.repeat(np.cumsum(lengths) - lengths, lengths)  # within its vector
    flat = np.asarray(values.values.to_numpy(zero_copy_only=False), dtype=np.float64)[value_offsets[row] + position]
    index = position.copy()
    sparse = ~dense[row]
    if sparse.any():
        index_offsets = np.asarray(indices.offsets.to_numpy(), dtype=np.int64)
        stored = np.asarray(indices.values.to_numpy(zero_copy_only=False), dtype=np.int64)
        index[sparse] = stored[index_offsets[row[sparse]] + position[sparse]]
    kept = flat != 0
    offsets = pa.array(np.concatenate([[0], np.cumsum(np.bincount(row[kept], minlength=len(array)))]), pa.int32())
    return pa.StructArray.from_arrays(
        [pa.ListArray.from_arrays(offsets, pa.array(index[kept], pa.int32())),
         pa.ListArray.from_arrays(offsets, pa.array(flat[kept], pa.float64()))],
        names=["indices", "values"], mask=pa.array(~valid))


def _arrow_kind(arrow_type, name: str) -> str:
    import pyarrow.types as t

    if t.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    if t.is_floating(arrow_type) or t.is_decimal(arrow_type):
        return "float"
    if t.is_struct(arrow_type) and {f.name for f in arrow_type} == {"indices", "values"}:
        return "vector"  # a Spark ML vector, normalized
    if (t.is_list(arrow_type) or t.is_large_list(arrow_type)) and (
            t.is_floating(arrow_type.value_type) or t.is_decimal(arrow_type.value_type)):
        return "floats"
    if (t.is_integer(arrow_type) or t.is_boolean(arrow_type) or t.is_string(arrow_type) or t.is_large_string(arrow_type)
            or t.is_date(arrow_type) or t.is_timestamp(arrow_type) or t.is_binary(arrow_type)
            or t.is_list(arrow_type) or t.is_large_list(arrow_type)):
        return "exact"
    raise FingerprintError(f"column '{name}' has type {arrow_type}, which the fingerprint of a dataframe engine's "
                           "output does not compare: return integers, booleans, strings, dates, floats or lists")


def _column_hashes(array, seed: int) -> np.ndarray:
    """Spark's xxhash64(salt, column) for one Arrow column, as uint64 (nulls hash as the salt alone)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.types as t

    kind = array.type
    valid = ~np.asarray(array.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    out = np.full(len(array), seed, dtype=np.uint64)  # Spark's hash of a null value is its seed
    if t.is_dictionary(kind):  # each distinct value hashed once
        indices = np.asarray(pc.fill_null(array.indices, 0).to_numpy(zero_copy_only=False), dtype=np.int64)
        out[valid] = _column_hashes(array.dictionary, seed)[indices[valid]]
        return out
    if t.is_integer(kind) or t.is_boolean(kind) or t.is_date(kind) or t.is_timestamp(kind):
        if t.is_date(kind):
            array = array.cast(pa.date32()).cast(pa.int32())
        elif t.is_timestamp(kind):
            array = array.cast(pa.timestamp("us")).cast(pa.int64())
        values = np.asarray(pc.fill_null(array.cast(pa.int64()), 0).to_numpy(zero_copy_only=False), dtype=np.int64)
        out[valid] = _xxh64_longs(values[valid].view(np.uint64), seed)
        return out
    if t.is_list(kind) or t.is_large_list(kind):
        texts = [None if v is None else _SEP.join(_NULL_ELEMENT if x is None else _text(x) for x in v)
                 for v in array.to_pylist()]
        array = pa.array(texts, pa.string())
    out[valid] = _xxh64_strings(array, seed)[valid]
    return out


def _text(value) -> str:
    """An exact array element as Spark's cast to string writes it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _floats(array) -> np.ndarray:
    import pyarrow as pa

    values = array.cast(pa.float64()).to_numpy(zero_copy_only=False)
    return np.asarray(values, dtype=np.float64)  # nulls arrive as NaN: missing either way


def _list_parts(array) -> tuple[np.ndarray, np.ndarray]:
    """Elements per row (0 for a null list) and every element, as doubles (a null element as NaN)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    counts = np.asarray(pc.fill_null(pc.list_value_length(array), 0).to_numpy(zero_copy_only=False), dtype=np.int64)
    values = np.asarray(array.flatten().cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
    return counts, values


def _float_stats(values: np.ndarray, weights: np.ndarray) -> dict:
    missing = np.isnan(values)
    posinf, neginf = values == np.inf, values == -np.inf
    finite = ~missing & ~posinf & ~neginf
    v, w = values[finite], weights[finite]
    return {"count": int(finite.sum()), "missing": int(missing.sum()), "posinf": int(posinf.sum()),
            "neginf": int(neginf.sum()), "sum": float(v.sum()), "sum_abs": float(np.abs(v).sum()),
            "sum_sq": float((v * v).sum()), "weighted": float((v * w).sum())}


# xxHash64, as Spark's XXH64 computes it (the standard algorithm), for the hash of a salt and one value.
_P1, _P2, _P3, _P4, _P5 = (0x9E3779B185EBCA87, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0x85EBCA77C2B2AE63,
                           0x27D4EB2F165667C5)
_SPARK_SEED = 42


@cache
def _salt_seed(salt: int) -> int:
    """Spark's xxhash64(lit(salt), x) hashes x with the hash of the int salt as its seed."""
    import xxhash

    return xxhash.xxh64_intdigest(struct.pack("<i", salt), seed=_SPARK_SEED)


def _xxh64_strings(array, seed: int) -> np.ndarray:
    """xxhash64 of each value's bytes (Arrow strings or binaries; a null as the empty value), vectorized: every
    row goes through the algorithm's steps at once, each step applied to the rows long enough for it (32-byte
    stripes, then 8-byte words, a 4-byte word, single bytes), reading little-endian words at any byte offset
    through an overlapping view of the data. 10M short strings take about 1.5 s, where hashing each distinct
    value in Python took 5 s for a column of 2M distinct values."""
    import pyarrow as pa

    array = array.cast(pa.large_binary())
    n = len(array)
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int64)[array.offset:array.offset + n + 1]
    data = array.buffers()[2]
    data = np.concatenate([np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8),
                           np.zeros(8, np.uint8)])  # every word read ends inside a value; 8 bytes keep the view whole
    starts, lengths = offsets[:-1].copy(), np.diff(offsets)
    p1, p2, p3, p4, p5 = (np.uint64(p) for p in (_P1, _P2, _P3, _P4, _P5))
    with np.errstate(over="ignore"):
        h = np.full(n, np.uint64((seed + _P5) & 0xFFFFFFFFFFFFFFFF), dtype=np.uint64)
        stripes = lengths // 32
        long = np.nonzero(stripes)[0]
        if len(long):  # values of 32 bytes or more: four accumulators over 32-byte stripes
            long = long[np.argsort(-stripes[long], kind="stable")]  # the rows still striping are always a prefix
            count = stripes[long]
            lanes = [np.full(len(long), np.uint64(v & 0xFFFFFFFFFFFFFFFF), dtype=np.uint64)
                     for v in (seed + _P1 + _P2, seed + _P2, seed, seed - _P1)]
            for stripe in range(int(count[0])):
                active = int(np.count_nonzero(count > stripe))
                at = starts[long[:active]] + 32 * stripe
                for lane, acc in enumerate(lanes):
                    acc[:active] = _xxh64_round(acc[:active], _words(data, at + 8 * lane, 8))
            merged_ = _rotl(lanes[0], 1) + _rotl(lanes[1], 7) + _rotl(lanes[2], 12) + _rotl(lanes[3], 18)
            for acc in lanes:
                merged_ = (merged_ ^ _xxh64_round(np.zeros_like(acc), acc)) * p1 + p4
            h[long] = merged_
        h += lengths.astype(np.uint64)
        at, rest = starts + 32 * stripes, lengths - 32 * stripes
        for word in range(3):  # up to three 8-byte words
            rows = np.nonzero(rest >= 8 * (word + 1))[0]
            k = _xxh64_round(np.zeros(len(rows), np.uint64), _words(data, at[rows] + 8 * word, 8))
            h[rows] = _rotl(h[rows] ^ k, 27) * p1 + p4
        at, rest = at + 8 * (rest // 8), rest % 8
        rows = np.nonzero(rest >= 4)[0]  # a 4-byte word
        h[rows] = _rotl(h[rows] ^ (_words(data, at[rows], 4) * p1), 23) * p2 + p3
        at[rows] += 4
        rest[rows] -= 4
        for byte in range(3):  # up to three single bytes
            rows = np.nonzero(rest > byte)[0]
            h[rows] = _rotl(h[rows] ^ (data[at[rows] + byte].astype(np.uint64) * p5), 11) * p1
        return _xxh64_avalanche(h)


def _words(data: np.ndarray, positions: np.ndarray, width: int) -> np.ndarray:
    """The little-endian unsigned words of `width` bytes at each byte position, as uint64."""
    view = np.ndarray(shape=(len(data) - width + 1,), dtype=f"<u{width}", buffer=data, strides=(1,))
    return view[positions].astype(np.uint64)


def _xxh64_round(acc: np.ndarray, word: np.ndarray) -> np.ndarray:
    return _rotl(acc + word * np.uint64(_P2), 31) * np.uint64(_P1)


def _xxh64_avalanche(h: np.ndarray) -> np.ndarray:
    h ^= h >> np.uint64(33)
    h *= np.uint64(_P2)
    h ^= h >> np.uint64(29)
    h *= np.uint64(_P3)
    h ^= h >> np.uint64(32)
    return h


def _xxh64_longs(values: np.ndarray, seed: int) -> np.ndarray:
    """xxhash64 of each 8-byte little-endian value (Spark's hashLong), vectorized with wrapping uint64."""
    with np.errstate(over="ignore"):
        p1, p2, p4 = np.uint64(_P1), np.uint64(_P2), np.uint64(_P4)
        h = np.full(values.shape, np.uint64((seed + _P5 + 8) & 0xFFFFFFFFFFFFFFFF), dtype=np.uint64)
        k = _rotl(values * p2, 31) * p1
        h ^= k
        h = _rotl(h, 27) * p1 + p4
        return _xxh64_avalanche(h)


def _rotl(x: np.ndarray, bits: int) -> np.ndarray:
    return (x << np.uint64(bits)) | (x >> np.uint64(64 - bits))


# ---------------------------------------------------------------------------------------------- comparing


def compare(expected: dict, actual: dict, tolerance: Tolerance) -> list[str]:
    """What differs between two fingerprints, in words; empty when they agree."""
    if not isinstance(expected, dict) or not isinstance(actual, dict):
        return ["a fingerprint is missing"]
    if expected.get("version") != VERSION or actual.get("version") != VERSION:
        return [f"fingerprint versions {expected.get('version')} and {actual.get('version')} cannot be compared "
                f"(this suite writes version {VERSION})"]
    problems = []
    if expected["rows"] != actual["rows"]:
        problems.append(f"rows: {expected['rows']:,} != {actual['rows']:,}")
    columns_e = {*expected["exact_columns"], *expected["floats"]}
    columns_a = {*actual["exact_columns"], *actual["floats"]}
    for column in sorted(columns_e ^ columns_a):
        problems.append(f"column '{column}' is in only one output")
    if expected["exact_columns"] != actual["exact_columns"]:
        moved = sorted((set(expected["exact_columns"]) ^ set(actual["exact_columns"])) & columns_e & columns_a)
        problems += [f"column '{c}' is exact in one output and floating in the other" for c in moved]
    exact_differ = (expected["hash_lo"], expected["hash_hi"]) != (actual["hash_lo"], actual["hash_hi"])
    if exact_differ and not problems:
        problems.append(f"exact columns ({', '.join(expected['exact_columns'])}): the row hashes differ, so at least "
                        "one row's exact values differ")
    for column in sorted(set(expected["floats"]) & set(actual["floats"])):
        a, b = expected["floats"][column], actual["floats"][column]
        if a["kind"] != b["kind"]:
            problems.append(f"'{column}': {a['kind']} in one output, {b['kind']} in the other")
            continue
        counts = [f"{n} {a[n]:,} != {b[n]:,}" for n in _COUNTS if a[n] != b[n]]
        if counts:
            problems.append(f"'{column}': " + ", ".join(counts))
            continue
        for stat in _STATS:
            if stat == "weighted" and exact_differ:
                continue  # the weights come from the exact values, which already differ
            bound = _bound(stat, a, b, tolerance)
            if not _within(a[stat], b[stat], bound):
                problems.append(f"'{column}': {stat.replace('_', ' ')} {a[stat]!r} != {b[stat]!r} (differs by "
                                f"{_gap(a[stat], b[stat])}, allowed {bound:.3g} for rel {tolerance.rel:g}, "
                                f"abs {tolerance.abs:g} per value)")
                break
        else:
            if "cross" in a and "cross" in b:
                bound = _cross_bound(a, b, tolerance)
                if not _within(a["cross"]["cross"], b["cross"]["cross"], bound):
                    problems.append(f"'{column}': its values are not with the same rows' other floating values: cross "
                                    f"sum {a['cross']['cross']!r} != {b['cross']['cross']!r} (differs by "
                                    f"{_gap(a['cross']['cross'], b['cross']['cross'])}, allowed {bound:.3g})")
    return problems


def _cross_bound(a: dict, b: dict, tol: Tolerance) -> float:
    """How far sum(v R) may move if each value moves by at most abs + rel |v| (R = sum of w_k v_k over the row's
    other floating values, U = sum of w_k |v_k|, W = sum of w_k): per row |v| (abs W + rel U) + (abs + rel |v|) |R|
    + (abs + rel |v|)(abs W + rel U), summed, plus the rounding of summing in another order."""
    pick = lambda stat: max(a["cross"][stat], b["cross"][stat])
    s1, n, w = max(a["sum_abs"] or 0.0, b["sum_abs"] or 0.0), max(a["count"], b["count"]), a["cross"]["w"]
    s2, s3, s4, s5 = pick("abs_r"), pick("v_u"), pick("abs_vr"), pick("u")
    ra, rr = tol.abs, tol.rel
    return (ra * (w * s1 + s2) + rr * (s3 + s4) + n * ra * ra * w + ra * rr * (s5 + w * s1) + rr * rr * s3
            + 2 * n * EPSILON * s4)


def _bound(stat: str, a: dict, b: dict, tol: Tolerance) -> float:
    """How far a sum may move if each of its n values moves by at most abs + rel * |v|, plus the worst-case
    rounding of summing n doubles in another order (2 n eps of the sum's scale)."""
    n = max(a["count"], b["count"])
    s = max(a["sum_abs"] or 0.0, b["sum_abs"] or 0.0)
    q = max(a["sum_sq"] or 0.0, b["sum_sq"] or 0.0)
    rounding = 2 * n * EPSILON
    if stat == "sum_sq":  # (v + d)^2 - v^2 = 2 v d + d^2
        return 2.01 * (tol.abs * s + tol.rel * q) + 2 * (n * tol.abs ** 2 + tol.rel ** 2 * q) + rounding * q
    weight = 1.5 if stat == "weighted" else 1.0  # weights are below 1.5
    return weight * (n * tol.abs + tol.rel * s + rounding * s)


def _within(a, b, bound: float) -> bool:
    if a is None or b is None:
        return a is b
    return abs(a - b) <= bound


def _gap(a, b) -> str:
    return "?" if a is None or b is None else f"{abs(a - b):.3g}"


# ---------------------------------------------------------------------------------------------- rows


def compare_rows(expected, actual, tolerance: Tolerance, show: int = 3) -> list[str]:
    """Row by row, after sorting both (exact columns first, then floating ones): the first rows that differ."""
    if sorted(expected.column_names) != sorted(actual.column_names):
        return [f"columns differ: {sorted(expected.column_names)} vs {sorted(actual.column_names)}"]
    columns = sorted(expected.column_names)
    floating = {c for c in columns if _arrow_kind(expected.schema.field(c).type, c) != "exact"}
    order = [*(c for c in columns if c not in floating), *(c for c in columns if c in floating)]
    left, right = _sorted_rows(expected, order), _sorted_rows(actual, order)
    problems = []
    if len(left) != len(right):
        problems.append(f"{len(left):,} rows != {len(right):,} rows")
    for number, (a, b) in enumerate(zip(left, right)):
        if len(problems) >= show:
            break
        bad = [c for c, x, y in zip(order, a, b) if not _same(x, y, tolerance, c in floating)]
        if bad:
            shown = ", ".join(f"{c}={x!r} vs {y!r}" for c, x, y in zip(order, a, b) if c in bad)
            key = ", ".join(f"{c}={x!r}" for c, x in zip(order, a) if c not in floating and c not in bad)
            problems.append(f"row {number + 1} of the sorted output" + (f" ({key})" if key else "") + f": {shown}")
    return problems


def _sorted_rows(table, order: list[str]) -> list[tuple]:
    values = [table.column(c).to_pylist() for c in order]
    rows = list(zip(*values)) if values else []
    return sorted(rows, key=lambda row: tuple(_sort_key(v) for v in row))


def _sort_key(value):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return (0, "")
    if isinstance(value, (int, float)):
        return (1, value)
    if isinstance(value, (list, tuple)):
        return (2, repr(value))
    if isinstance(value, dict):
        return (2, repr(sorted(value.items())))
    return (3, str(value))


def _same(x, y, tolerance: Tolerance, floating: bool) -> bool:
    if not floating:
        return x == y
    if isinstance(x, dict) and isinstance(y, dict):  # an ML vector's entries: indices exact, values close
        return x.get("indices") == y.get("indices") and _same(x.get("values"), y.get("values"), tolerance, True)
    if isinstance(x, list) and isinstance(y, list):
        return len(x) == len(y) and all(_same(a, b, tolerance, True) for a, b in zip(x, y))
    missing_x = x is None or (isinstance(x, float) and math.isnan(x))
    missing_y = y is None or (isinstance(y, float) and math.isnan(y))
    if missing_x or missing_y:
        return missing_x and missing_y
    if math.isinf(x) or math.isinf(y):
        return x == y
    return abs(x - y) <= tolerance.abs + tolerance.rel * max(abs(x), abs(y))
