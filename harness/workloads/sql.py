"""SQL workloads: a user's ``.sql`` file becomes a workload like the built-in ones.

The file starts with header lines, then holds one or more statements separated by ``;``::

    -- family: shuffle                        (featurize, shuffle, join, handoff, handoff_read)
    -- tables: lineitem, orders               (generated tables or datasets in conf/datasets.conf)
    -- description: what it measures
    -- conf: spark.sql.ansi.enabled=false     (a runtime SQL setting for this workload; repeatable)
    -- tolerance: rel=1e-6 abs=1e-9           (how far a float may differ between engines)

Exactly one statement returns rows (a SELECT, WITH, VALUES, TABLE or FROM query): that one is timed. The
statements before it (CREATE VIEW, SET, CACHE ...) run as set-up and those after it (DROP VIEW ...) as
tear-down, both outside the timed region. The tables are registered first, by name, as tables over their
Parquet files in the session's catalog (as a team's catalog holds them), so that set-up statements may create
permanent views over them as well as temporary ones.
"""

from __future__ import annotations

import re
from pathlib import Path

from .. import HarnessError
from ..config import ConfigError, parse_override, validate
from ..fingerprint import Tolerance
from . import FAMILIES, Workload

_HEADER = re.compile(r"--\s*(family|tables|description|conf|tolerance)\s*:\s*(.*?)\s*$")
_QUERY = re.compile(r"(?is)\s*(\(\s*)*(select|with|values|table|from)\b")


def from_sql_file(path: Path) -> Workload:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise HarnessError(f"{path}: cannot read it as UTF-8 text ({err})") from None
    header: dict[str, list[tuple[str, int]]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if m := _HEADER.match(line.strip()):
            header.setdefault(m.group(1), []).append((m.group(2), number))
    if "family" not in header or "tables" not in header:
        raise HarnessError(f"{path}: a SQL workload starts with '-- family: <{'|'.join(FAMILIES)}>' and "
                           "'-- tables: <name>, ...' lines")
    statements = split_statements(text)
    queries = [(i, line) for i, (statement, line) in enumerate(statements) if _QUERY.match(statement)]
    if not queries and len(statements) == 1:  # one statement: it is the timed one, and Spark says what is wrong with it
        queries = [(0, statements[0][1])]
    if len(queries) != 1:
        found = ", ".join(f"line {line}" for _, line in queries) or "none"
        raise HarnessError(f"{path}: a SQL workload times exactly one statement that returns rows (a SELECT, WITH, "
                           f"VALUES, TABLE or FROM query); found {len(queries)} ({found})")
    timed_index, timed_line = queries[0]
    setup = [s for s, _ in statements[:timed_index]]
    timed = statements[timed_index][0]
    teardown = [s for s, _ in statements[timed_index + 1:]]
    tables = tuple(t.strip() for t in header["tables"][0][0].split(",") if t.strip())

    registered: list[str] = []

    def prepare(spark, dataframes):
        for name, df in dataframes.items():
            if register(spark, name, df, getattr(dataframes, "paths", {}).get(name)):
                registered.append(name)
        for statement in setup:
            spark.sql(statement).collect()

    def cleanup(spark):
        """The tear-down statements, then the tables registered for this workload: a later workload that forgot
        to list a table must not find one left in a server's catalog."""
        for statement in teardown:
            spark.sql(statement).collect()
        while registered:
            spark.sql(f"DROP TABLE IF EXISTS `{registered.pop()}`").collect()

    def build(dataframes):
        return next(iter(dataframes.values())).sparkSession.sql(timed)

    return Workload(path.stem, header["family"][0][0], tables, build, None,
                    header.get("description", [(path.name, 0)])[0][0], sql_conf=_conf(path, header.get("conf", [])),
                    tolerance=_tolerance(path, header.get("tolerance", [])), prepare=prepare, cleanup=cleanup,
                    timed=f"the statement at line {timed_line}" + (f", after {len(setup)} set-up statement(s)" if setup else "")
                    + (f", before {len(teardown)} tear-down statement(s)" if teardown else ""), source=str(path))


def register(spark, name: str, df, path: str | None) -> bool:
    """The table `name` over the Parquet files at `path` in the session catalog (an external table: dropping it
    never deletes the files), replacing an earlier registration of the name; a temporary view without a path.
    True if a table was registered."""
    if path is None:
        df.createOrReplaceTempView(name)
        return False
    spark.sql(f"DROP TABLE IF EXISTS `{name}`").collect()
    location = path.replace("\\", "\\\\").replace("'", "\\'")
    spark.sql(f"CREATE TABLE `{name}` USING parquet LOCATION '{location}'").collect()
    return True


def split_statements(text: str) -> list[tuple[str, int]]:
    """The statements of a SQL text split on `;`, ignoring those inside quotes and comments, each with the
    line it starts on; comments are dropped and empty statements skipped."""
    statements, current, start_line, line = [], [], None, 1
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("--", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        if text.startswith("/*", i):
            end = text.find("*/", i + 2)
            stop = n if end < 0 else end + 2
            line += text.count("\n", i, stop)
            i = stop
            continue
        if c in "'\"`":
            end = i + 1
            while end < n and text[end] != c:
                end += 2 if text[end] == "\\" else 1
            chunk = text[i:end + 1]
            if start_line is None:
                start_line = line
            current.append(chunk)
            line += chunk.count("\n")
            i = end + 1
            continue
        if c == ";":
            if "".join(current).strip():
                statements.append(("".join(current).strip(), start_line))
            current, start_line = [], None
        else:
            if start_line is None and not c.isspace():
                start_line = line
            current.append(c)
            line += c == "\n"
        i += 1
    if "".join(current).strip():
        statements.append(("".join(current).strip(), start_line))
    return statements


def _conf(path: Path, lines: list[tuple[str, int]]) -> dict:
    found = {}
    for value, number in lines:
        where = f"{path}:{number}"
        try:
            key, setting = parse_override(value)
        except ConfigError as err:
            raise HarnessError(f"{where}: {err}") from None
        if not key.startswith("spark.sql."):
            raise HarnessError(f"{where}: '-- conf:' sets a runtime SQL setting (spark.sql.*) for this workload; "
                               f"'{key}' is not one (put engine and host settings in conf/)")
        validate(key, setting, where)
        found[key] = setting
    return found


def _tolerance(path: Path, lines: list[tuple[str, int]]) -> Tolerance:
    if not lines:
        return Tolerance()
    value, number = lines[-1]
    parts = dict(re.findall(r"(rel|abs)\s*=\s*([^\s,]+)", value))
    try:
        if not parts or re.sub(r"(rel|abs)\s*=\s*[^\s,]+|[\s,]", "", value):
            raise ValueError("expected rel=... and/or abs=...")
        return Tolerance(**{k: float(v) for k, v in parts.items()})
    except ValueError as err:
        raise HarnessError(f"{path}:{number}: '-- tolerance: {value}': write it as 'rel=1e-6 abs=1e-9' ({err})") from None
