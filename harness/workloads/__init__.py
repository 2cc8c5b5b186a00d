"""The workload registry: built-in workloads in this package, user workloads in ``workloads/``.

A workload is one small declaration (name, family, the tables it reads, how its DataFrame is built, and an
independent pandas reference used by the tests). A module declares ``WORKLOAD`` or, for variants of one
idea, ``WORKLOADS``. asv, the tests and the reports all read this registry, so adding a workload is adding
a file; nothing else lists them. The engine is never visible to a workload: the same ``build`` runs under
every engine, which differ by configuration alone.

Users add workloads without touching the harness: a ``.sql`` file (header lines ``-- family:``,
``-- tables:`` and ``-- description:``, then one query over the tables by name) or a ``.py`` file declaring
``WORKLOAD`` like the built-ins, in ``workloads/`` at the repository root (or ``$PREPBENCH_WORKLOADS_DIR``).
Tables are the generated ones or the user's own Parquet datasets named in ``conf/datasets.conf``.
"""

from __future__ import annotations

import contextlib
import fnmatch
import importlib
import importlib.util
import math
import os
import pkgutil
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Callable

from .. import REPO_ROOT, HarnessError
from ..data import known_tables

FAMILIES = ("featurize", "shuffle", "join", "handoff")
USER_DIR_ENV = "PREPBENCH_WORKLOADS_DIR"


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
    force: Callable = write_noop  # runs the plan; may return a dict of figures to record (bytes written, ...)
    sql_conf: dict = field(default_factory=dict)  # runtime SQL settings this workload is defined by
    float_rel_tol: float = 1e-9  # relative tolerance for floating aggregates across engines
    source: str = ""

    def __post_init__(self):
        if not re.fullmatch(r"[a-z][a-z0-9_]*", self.name):
            raise HarnessError(f"workload name '{self.name}' must be lower_snake_case (it names files and graphs)")
        if self.family not in FAMILIES:
            raise HarnessError(f"workload {self.name}: family must be one of {FAMILIES}, not '{self.family}'")
        unknown = [t for t in self.tables if t not in known_tables()]
        if unknown:
            raise HarnessError(f"workload {self.name}: unknown table(s) {unknown} "
                               f"(known: {', '.join(sorted(known_tables()))}; add your own in conf/datasets.conf)")


@contextlib.contextmanager
def sql_settings(spark, workload: Workload):
    """The workload's runtime SQL settings, restored afterwards (a session outlives one workload in tests)."""
    previous = {key: spark.conf.get(key, None) for key in workload.sql_conf}
    for key, value in workload.sql_conf.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, value in previous.items():
            spark.conf.unset(key) if value is None else spark.conf.set(key, value)


# ---------------------------------------------------------------------------------------------- discovery


def user_dir() -> Path:
    return Path(os.environ.get(USER_DIR_ENV) or REPO_ROOT / "workloads")


def _declared(namespace: dict, where: str) -> list[Workload]:
    found = namespace.get("WORKLOADS") or ([namespace["WORKLOAD"]] if "WORKLOAD" in namespace else [])
    return [w if w.source else Workload(**{**w.__dict__, "source": where}) for w in found]


def _from_sql(path: Path) -> Workload:
    text = path.read_text()
    header = dict(re.findall(r"^--\s*(family|tables|description):\s*(.+?)\s*$", text, flags=re.M))
    if "family" not in header or "tables" not in header:
        raise HarnessError(f"{path}: a SQL workload starts with '-- family: <{'|'.join(FAMILIES)}>' and "
                           "'-- tables: <name>, ...' lines")

    def build(tables):
        spark = next(iter(tables.values())).sparkSession
        for name, df in tables.items():
            df.createOrReplaceTempView(name)
        return spark.sql(text)

    tables = tuple(t.strip() for t in header["tables"].split(",") if t.strip())
    return Workload(path.stem, header["family"], tables, build, None, header.get("description", path.name),
                    source=str(path))


def _from_python(path: Path) -> list[Workload]:
    spec = importlib.util.spec_from_file_location(f"prepbench_user_workloads.{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return _declared(vars(module), str(path))


@cache
def registry() -> dict[str, Workload]:
    found: list[Workload] = []
    for module in pkgutil.iter_modules(__path__):
        found += _declared(vars(importlib.import_module(f"{__name__}.{module.name}")), f"{__name__}.{module.name}")
    if user_dir().is_dir():
        for path in sorted(user_dir().iterdir()):
            if path.suffix == ".sql":
                found.append(_from_sql(path))
            elif path.suffix == ".py" and not path.name.startswith("_"):
                found += _from_python(path)
    by_name: dict[str, Workload] = {}
    for workload in found:
        if workload.name in by_name:
            raise HarnessError(f"two workloads are named '{workload.name}': "
                               f"{by_name[workload.name].source} and {workload.source}")
        by_name[workload.name] = workload
    return dict(sorted(by_name.items(), key=lambda kv: (FAMILIES.index(kv[1].family), kv[0])))


def selected(patterns) -> list[str]:
    """Registered workload names matching any of the patterns (names or globs); an unmatched pattern is an error."""
    names = list(registry())
    for pattern in patterns:
        if not fnmatch.filter(names, pattern):
            raise HarnessError(f"no workload matches '{pattern}' (see `python -m harness workloads`)")
    return [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)]


def get(name: str) -> Workload:
    try:
        return registry()[name]
    except KeyError:
        raise HarnessError(f"no workload named '{name}' (known: {', '.join(registry())})") from None


# ---------------------------------------------------------------------------------------------- checksums


def checksum(df) -> dict:
    """An order-insensitive fingerprint of a DataFrame, computed by Spark in one aggregation.

    Integer, string and other exact columns feed one 64-bit hash per row, summed (exact comparison).
    Floating columns and arrays of them are summed as absolute values with their count; ML vectors by
    Spark ML's sparse-aware Summarizer (L1 norm and non-zero count per dimension, summed), never densified:
    a TF-IDF vector has 2^18 dimensions. All are compared within a relative tolerance (summation order
    differs between engines and partitionings).
    """
    from pyspark.ml.stat import Summarizer
    from pyspark.sql import functions as F

    kinds = dict(df.dtypes)
    floating = [c for c, t in kinds.items() if t in ("float", "double", "array<float>", "array<double>", "vector")]
    exact = [c for c in kinds if c not in floating]
    aggs = [F.count(F.lit(1)).alias("rows")]
    if exact:
        aggs.append(F.sum(F.xxhash64(*exact).bitwiseAND(0xFFFFFFFF)).alias("hash"))
    for c in floating:
        if kinds[c] == "vector":
            aggs.append(Summarizer.metrics("normL1", "numNonZeros").summary(F.col(c)).alias(f"vector:{c}"))
        elif kinds[c].startswith("array"):
            total = F.aggregate(c, F.lit(0.0), lambda acc, x: acc + F.abs(x))
            aggs += [F.sum(total).alias(f"abs_sum:{c}"), F.sum(F.size(c)).alias(f"count:{c}")]
        else:
            aggs += [F.sum(F.abs(c)).alias(f"abs_sum:{c}"), F.count(c).alias(f"count:{c}")]
    row = df.agg(*aggs).first().asDict()
    floats = {}
    for c in floating:
        if kinds[c] == "vector":
            summary = row[f"vector:{c}"]
            floats[c] = {"abs_sum": float(summary.normL1.toArray().sum()) if summary else 0.0,
                         "count": int(summary.numNonZeros.toArray().sum()) if summary else 0}
        else:
            floats[c] = {"abs_sum": row[f"abs_sum:{c}"], "count": row[f"count:{c}"]}
    return {"rows": row["rows"], "hash": row.get("hash"), "floats": floats}


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
