"""The workload registry: built-in workloads in this package, user workloads in ``workloads/``.

A workload is one small declaration: its name, family, the tables it reads, how its Spark DataFrame is
built, optionally its dataframe form (the same result with the pandas API, which pandas, cuDF's
``cudf.pandas`` and, unless it says otherwise, Dask run), an independent pandas reference for the tests,
the runtime SQL settings and the float tolerance it is defined by. A module declares ``WORKLOAD`` or, for
variants of one idea, ``WORKLOADS``. asv, the tests and the reports all read this registry, so adding a
workload is adding a file; nothing else lists them. The engine is never visible to a workload: the same
``build`` runs under every Spark engine, which differ by configuration alone.

Users add workloads without touching the harness: a ``.sql`` file (see ``sql.py`` for its header lines and
statements) or a ``.py`` file declaring ``WORKLOAD`` like the built-ins, in ``workloads/`` at the repository
root (or ``$PREPBENCH_WORKLOADS_DIR``). Tables are the generated ones or the user's own Parquet datasets
named in ``conf/datasets.conf``, which run once, at the scale ``as-is``.
"""

from __future__ import annotations

import contextlib
import fnmatch
import importlib
import importlib.util
import os
import pkgutil
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Callable

from .. import REPO_ROOT, HarnessError
from ..config import AS_IS
from ..data import derived_tables, known_tables, user_datasets
from ..fingerprint import Tolerance

FAMILIES = ("featurize", "shuffle", "join", "handoff", "handoff_read")
USER_DIR_ENV = "PREPBENCH_WORKLOADS_DIR"


class Tables(dict):
    """A workload's input DataFrames by table name, with the Parquet location each was read from (SQL workloads
    register them as tables over those files, the way teams' catalogs do)."""

    def __init__(self, frames: dict, paths: dict[str, str]):
        super().__init__(frames)
        self.paths = dict(paths)


def read_tables(spark, paths: dict[str, str]) -> Tables:
    return Tables({table: spark.read.parquet(str(path)) for table, path in paths.items()}, {t: str(p) for t, p in paths.items()})


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
    tolerance: Tolerance = field(default_factory=Tolerance)  # how far a float may differ across engines
    frame: Callable | None = None  # the dataframe form: dict[table, pandas or Dask DataFrame] -> DataFrame
    frame_eager_only: str = ""  # why the dataframe form needs eager pandas (then Dask has no form of it)
    prepare: Callable | None = None  # (session, tables) -> None: set-up outside the timed region
    cleanup: Callable | None = None  # (session) -> None: tear-down after the last run
    timed: str = ""  # what the timed region runs, when that needs saying (a SQL file's timed statement)
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

    @property
    def on_user_data(self) -> bool:
        """A workload over the user's own datasets runs once, at scale as-is, whatever --scales says."""
        return bool(self.tables) and all(t in user_datasets() for t in self.tables)

    def runs_at(self, scale: str) -> bool:
        return (scale == AS_IS) == self.on_user_data

    @property
    def derived(self) -> list[str]:
        """The tables this workload reads that are written from others first (say, a layout of handoff shards)."""
        return [t for t in self.tables if t in derived_tables()]


def keep_alive(df, *fitted):
    """The DataFrame, holding on to the ML models its plan uses: under Spark Connect a fitted model's state
    lives on the server and is freed when its Python object is collected, which would fail the plan later."""
    df._prepbench_fitted = fitted
    return df


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


def _from_python(path: Path) -> list[Workload]:
    spec = importlib.util.spec_from_file_location(f"prepbench_user_workloads.{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return _declared(vars(module), str(path))


@cache
def registry() -> dict[str, Workload]:
    from .sql import from_sql_file

    found: list[Workload] = []
    for module in pkgutil.iter_modules(__path__):
        if not module.name.startswith("_") and module.name != "sql":
            found += _declared(vars(importlib.import_module(f"{__name__}.{module.name}")), f"{__name__}.{module.name}")
    if user_dir().is_dir():
        for path in sorted(user_dir().iterdir()):
            if path.suffix == ".sql":
                found.append(from_sql_file(path))
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
