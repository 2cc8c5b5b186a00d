"""The workload registry: every module in this package declares one ``WORKLOAD``.

A workload is one small declaration (name, family, the tables it reads, how its DataFrame is built, and an
independent pandas reference used by the tests). asv, the tests and the reports all read this registry, so
adding a workload is adding one file here; nothing else lists them. The engine is never visible to a
workload: the same ``build`` runs under every engine, which differ by configuration alone.
"""

from __future__ import annotations

import importlib
import math
import pkgutil
from dataclasses import dataclass
from functools import cache
from typing import Callable

from .. import HarnessError
from ..data import TABLES

FAMILIES = ("featurize", "shuffle", "join")


def write_noop(df) -> None:
    """Run the whole plan and discard the output: no driver collect, no disk write to time."""
    df.write.format("noop").mode("overwrite").save()


@dataclass(frozen=True)
class Workload:
    name: str
    family: str
    tables: tuple[str, ...]
    build: Callable  # dict[table name, Spark DataFrame] -> Spark DataFrame
    reference: Callable | None  # dict[table name, pandas DataFrame] -> pandas DataFrame (same columns)
    description: str
    force: Callable = write_noop
    float_rel_tol: float = 1e-9  # relative tolerance for floating aggregates across engines

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise HarnessError(f"workload {self.name}: family must be one of {FAMILIES}, not '{self.family}'")
        unknown = [t for t in self.tables if t not in TABLES]
        if unknown:
            raise HarnessError(f"workload {self.name}: unknown table(s) {unknown} (known: {', '.join(TABLES)})")

    def rows(self, scale_rows: int) -> int:
        """Rows processed: every input row the workload reads, the figure cost per row divides by."""
        return sum(TABLES[t].rows(scale_rows) for t in self.tables)


@cache
def registry() -> dict[str, Workload]:
    found: dict[str, Workload] = {}
    for module in pkgutil.iter_modules(__path__):
        workload = getattr(importlib.import_module(f"{__name__}.{module.name}"), "WORKLOAD", None)
        if workload is None:
            continue
        if workload.name in found:
            raise HarnessError(f"two workloads are named '{workload.name}'")
        found[workload.name] = workload
    return dict(sorted(found.items(), key=lambda kv: (FAMILIES.index(kv[1].family), kv[0])))


def get(name: str) -> Workload:
    try:
        return registry()[name]
    except KeyError:
        raise HarnessError(f"no workload named '{name}' (known: {', '.join(registry())})") from None


# ---------------------------------------------------------------------------------------------- checksums


def checksum(df) -> dict:
    """An order-insensitive fingerprint of a DataFrame, computed by Spark in one aggregation.

    Integer, string and other exact columns feed one 64-bit hash per row, summed (exact comparison).
    Floating columns are summed as absolute values with their non-null count (compared within a relative
    tolerance, since summation order differs between engines and partitionings).
    """
    from pyspark.sql import functions as F

    floating = [c for c, t in df.dtypes if t in ("float", "double")]
    exact = [c for c, _ in df.dtypes if c not in floating]
    aggs = [F.count(F.lit(1)).alias("rows")]
    if exact:
        aggs.append(F.sum(F.xxhash64(*exact).bitwiseAND(0xFFFFFFFF)).alias("hash"))
    for c in floating:
        aggs += [F.sum(F.abs(c)).alias(f"abs_sum:{c}"), F.count(c).alias(f"count:{c}")]
    row = df.agg(*aggs).first().asDict()
    return {
        "rows": row["rows"],
        "hash": row.get("hash"),
        "floats": {c: {"abs_sum": row[f"abs_sum:{c}"], "count": row[f"count:{c}"]} for c in floating},
    }


def compare(expected: dict, actual: dict, rel_tol: float) -> list[str]:
    """The differences between two checksums; empty when they agree."""
    problems = [
        f"{field}: {expected.get(field)} != {actual.get(field)}"
        for field in ("rows", "hash")
        if expected.get(field) != actual.get(field)
    ]
    for column in sorted(set(expected["floats"]) | set(actual["floats"])):
        a, b = expected["floats"].get(column), actual["floats"].get(column)
        if a is None or b is None:
            problems.append(f"{column}: present in only one output")
        elif a["count"] != b["count"]:
            problems.append(f"{column}: {a['count']} non-null values != {b['count']}")
        elif not _close(a["abs_sum"], b["abs_sum"], rel_tol):
            problems.append(f"{column}: sum of |values| {a['abs_sum']!r} != {b['abs_sum']!r} (rel. tol. {rel_tol})")
    return problems


def _close(a, b, rel_tol) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=rel_tol, abs_tol=0.0) or (math.isnan(a) and math.isnan(b))
