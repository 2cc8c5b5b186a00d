"""Generated datasets: deterministic, seeded, vectorized, cached as Parquet, checked on reuse.

Each table is built in chunks of rows; chunk ``i`` draws from its own generator seeded with ``(seed, table,
i)``, so the bytes are identical however many threads build them. Chunks become Parquet files written in
parallel into a temporary directory with a manifest (rows, bytes and CRC-32 of every file); the directory
is renamed into place only when complete. A cached dataset is used only if its manifest matches the files;
a truncated or corrupt one is regenerated.

The cache may be a local directory or any filesystem URI that both pyarrow and Spark reach (``file://``,
``hdfs://``, ``s3a://`` or ``s3://``, ``gs://``), so a cluster's executors can read what the driver wrote.
Object stores cannot rename a directory: there the files are written in place and the manifest last, and a
dataset without a manifest counts as absent. Reading every byte back from an object store would cost a
download per run, so there the check is file sizes, not CRC-32.

Shapes follow the public groupby and join benchmarks (h2oai db-benchmark), so figures compare:

* ``groupby``: id1, id2 (100 string keys), id3 (N/100 string keys), id4, id5 (100 int keys), id6 (N/100
  int keys), v1 (int 1-5), v2 (int 1-15), v3 (float 0-100).
* ``join_x`` (N rows) and ``join_small``, ``join_medium``, ``join_big`` (N/1e6, N/1e3 and N rows): the
  right tables hold 90% of the keys the fact table draws from, plus 10% it never uses.
* ``features``: numeric columns (one with nulls), low and high cardinality categories, and two keys over the
  same range (N/10 values), one uniform and one Zipf-skewed.
* ``corpus`` (N/1000 documents of 20-200 words, so about N/10 words): word frequencies follow Zipf's law over a generated
  vocabulary led by English stop words, with capitalized and punctuated forms; 5% of documents are exact
  copies of an earlier one and 5% near copies (5% of their words replaced).
"""

from __future__ import annotations

import json
import os
import posixpath
import uuid
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from . import CONF_DIR, HarnessError
from .config import read_properties

# Bump when any table's content changes: it is part of the cache key.
GENERATOR_VERSION = 3
CHUNK_ROWS = 1_000_000
MANIFEST = "_manifest.json"  # leading underscore: Spark's reader skips it
Location = Path | str  # a local directory, or a filesystem URI such as hdfs://namenode/prepbench


class DataError(HarnessError):
    """A dataset is missing, unknown or registered wrongly; the message says how to make it."""


# ---------------------------------------------------------------------------------------------- columns


def _rng(seed: int, table: str, chunk: int) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(table.encode()), chunk])


@cache
def _labels(prefix: str, count: int, width: int) -> pa.Array:
    """'id001', 'id002', ... as one Arrow string array, built without a Python loop (and once per process)."""
    numbers = pa.array(np.arange(1, count + 1, dtype=np.int64)).cast(pa.string())
    return pc.binary_join_element_wise(prefix, pc.utf8_lpad(numbers, width, "0"), "")


def _categorical(rng, labels: pa.Array, n: int) -> pa.DictionaryArray:
    """Uniform draws from `labels`, kept dictionary-encoded so Parquet writes the strings once."""
    return pa.DictionaryArray.from_arrays(rng.integers(0, len(labels), n, dtype=np.int32), labels)


def _keyed(prefix: str, keys: np.ndarray) -> pa.Array:
    """'id' + key for an integer key column (a string join key)."""
    return pc.binary_join_element_wise(prefix, pa.array(keys).cast(pa.string()), "")


def _shared_keys(m: int) -> np.ndarray:
    """The keys of a right-hand table of m rows: 90% of 1..m, plus 10% above m that the fact table never draws."""
    shared = int(m * 0.9)
    return np.concatenate([np.arange(1, shared + 1), np.arange(m + 1, m + 1 + (m - shared))]).astype(np.int64)


def _join_sizes(n: int) -> tuple[int, int, int]:
    """Key-space sizes of join_small, join_medium, join_big for a fact table of n rows."""
    return max(n // 1_000_000, 10), max(n // 1_000, 10), n


# ---------------------------------------------------------------------------------------------- tables


@dataclass(frozen=True)
class TableSpec:
    name: str
    rows: Callable[[int], int]  # table rows for a scale of n rows
    chunk: Callable[[int, int, int, np.random.Generator], pa.Table]  # (n, start, stop, rng) -> rows [start, stop)
    chunk_rows: int = CHUNK_ROWS


def _groupby_chunk(n, start, stop, rng):
    k, size = 100, stop - start
    groups = max(n // k, 1)
    low, high = _labels("id", k, 3), _labels("id", groups, 10)
    return pa.table({
        "id1": _categorical(rng, low, size),
        "id2": _categorical(rng, low, size),
        "id3": _categorical(rng, high, size),
        "id4": rng.integers(1, k + 1, size, dtype=np.int32),
        "id5": rng.integers(1, k + 1, size, dtype=np.int32),
        "id6": rng.integers(1, groups + 1, size, dtype=np.int32),
        "v1": rng.integers(1, 6, size, dtype=np.int32),
        "v2": rng.integers(1, 16, size, dtype=np.int32),
        "v3": np.round(rng.random(size) * 100, 6),
    })


def _join_x_chunk(n, start, stop, rng):
    size = stop - start
    small, medium, big = _join_sizes(n)
    id1, id2, id3 = (rng.integers(1, m + 1, size, dtype=np.int64) for m in (small, medium, big))
    return pa.table({
        "id1": id1, "id2": id2, "id3": id3,
        "id4": _keyed("id", id1), "id5": _keyed("id", id2), "id6": _keyed("id", id3),
        "v1": np.round(rng.random(size) * 100, 6),
    })


def _join_right(which: int):
    """A right-hand join table whose key is id{which+1} (and its string twin id{which+4})."""

    def chunk(n, start, stop, rng):
        keys = _shared_keys(_join_sizes(n)[which])[start:stop]
        return pa.table({
            f"id{which + 1}": keys,
            f"id{which + 4}": _keyed("id", keys),
            "v2": np.round(rng.random(len(keys)) * 100, 6),
        })

    return chunk


def _features_chunk(n, start, stop, rng):
    size = stop - start
    x2 = rng.lognormal(0.0, 1.0, size)
    return pa.table({
        "id": np.arange(start, stop, dtype=np.int64),
        "x1": rng.normal(50.0, 10.0, size),
        "x2": pa.array(x2, mask=rng.random(size) < 0.01),  # 1% nulls
        "x3": rng.random(size),
        "x4": rng.exponential(2.0, size),
        "cat_lo": _categorical(rng, _labels("c", 10, 2), size),
        "cat_hi": _categorical(rng, _labels("c", 1000, 4), size),
        "key_uniform": rng.integers(1, max(n // 10, 1) + 1, size, dtype=np.int64),
        "key_zipf": np.minimum(rng.zipf(1.3, size), max(n // 10, 1)).astype(np.int64),
        "label": (rng.random(size) < 0.3).astype(np.int8),
    })


STOP_WORDS = ("the", "of", "and", "to", "a", "in", "is", "that", "it", "for", "was", "on", "with", "as", "be",
              "at", "by", "this", "from", "or", "an", "are", "not", "but", "which", "have", "were", "they", "you")
VOCABULARY = 20_000
_SYLLABLES = ("ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "pa", "qui", "dor", "len", "mar", "tes", "bri",
              "cal", "fen", "gor", "hul", "jin", "kos", "lum", "nav", "pol", "ras", "sur", "tov", "var", "wex")
_PUNCTUATION = (".", ",", "!", "?", ";", ":")


@cache
def _surface_forms(seed: int) -> tuple[pa.Array, np.ndarray]:
    """Every written form of every word (plain, Capitalized, punctuated) and the Zipf CDF over the words."""
    rng = _rng(seed, "vocabulary", 0)
    made = VOCABULARY - len(STOP_WORDS)
    syllables = pa.array(_SYLLABLES)
    counts = rng.integers(2, 5, made)
    picks = syllables.take(pa.array(rng.integers(0, len(_SYLLABLES), int(counts.sum()))))
    offsets = pa.array(np.concatenate([[0], np.cumsum(counts)]).astype(np.int32))
    invented = pc.binary_join(pa.ListArray.from_arrays(offsets, picks), "")
    words = pa.concat_arrays([pa.array(STOP_WORDS), invented.cast(pa.string())])
    marks = pa.array(np.array(_PUNCTUATION)[rng.integers(0, len(_PUNCTUATION), VOCABULARY)])
    forms = pa.concat_arrays([words, pc.utf8_capitalize(words), pc.binary_join_element_wise(words, marks, "")])
    weights = 1.0 / np.arange(1, VOCABULARY + 1) ** 1.1
    return forms, np.cumsum(weights) / weights.sum()


def _corpus_chunk(n, start, stop, rng):
    docs = stop - start
    forms, cdf = _surface_forms(0)
    lengths = rng.integers(20, 201, docs)
    drawn_starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    words = np.minimum(np.searchsorted(cdf, rng.random(int(lengths.sum()))), VOCABULARY - 1)
    form = np.select([rng.random(len(words)) < 0.10, rng.random(len(words)) < 0.08], [1, 2], 0)
    drawn = words + form * VOCABULARY
    # Duplicates: a document may copy an earlier one of its chunk, exactly or with a few words replaced.
    kind = rng.random(docs)
    source = np.arange(docs)
    copies = (kind < 0.10) & (source > 0)
    source[copies] = (rng.random(int(copies.sum())) * source[copies]).astype(np.int64)
    out_lengths = lengths[source]
    out_offsets = np.concatenate([[0], np.cumsum(out_lengths)])
    total = int(out_offsets[-1])
    position = np.arange(total) - np.repeat(out_offsets[:-1], out_lengths)
    tokens = drawn[np.repeat(drawn_starts[source], out_lengths) + position]
    near = np.repeat(copies & (kind >= 0.05), out_lengths) & (rng.random(total) < 0.05)
    tokens[near] = rng.integers(0, VOCABULARY, int(near.sum()))
    text = pc.binary_join(pa.ListArray.from_arrays(pa.array(out_offsets.astype(np.int32)), forms.take(pa.array(tokens))), " ")
    return pa.table({"doc_id": np.arange(start, stop, dtype=np.int64), "text": text})


TABLES: dict[str, TableSpec] = {
    spec.name: spec
    for spec in (
        TableSpec("groupby", lambda n: n, _groupby_chunk),
        TableSpec("join_x", lambda n: n, _join_x_chunk),
        TableSpec("join_small", lambda n: _join_sizes(n)[0], _join_right(0)),
        TableSpec("join_medium", lambda n: _join_sizes(n)[1], _join_right(1)),
        TableSpec("join_big", lambda n: _join_sizes(n)[2], _join_right(2)),
        TableSpec("features", lambda n: n, _features_chunk),
        TableSpec("corpus", lambda n: max(n // 1_000, 100), _corpus_chunk, chunk_rows=100_000),
    )
}


# ---------------------------------------------------------------------------------------------- user datasets

DATASETS_ENV = "PREPBENCH_DATASETS"


def user_datasets() -> dict[str, str]:
    """The user's own Parquet datasets, `name path-or-URI` per line in conf/datasets.conf (or $PREPBENCH_DATASETS)."""
    path = Path(os.environ.get(DATASETS_ENV) or CONF_DIR / "datasets.conf")
    if not path.is_file():
        if os.environ.get(DATASETS_ENV):
            raise DataError(f"{DATASETS_ENV} names {path}, which does not exist")
        return {}
    found = {name: value for name, value, _ in read_properties(path)}
    clash = sorted(set(found) & set(TABLES))
    if clash:
        raise DataError(f"{path}: dataset name(s) {clash} are taken by generated tables; rename them")
    return found


# ---------------------------------------------------------------------------------------------- derived tables


@dataclass(frozen=True)
class Derived:
    """A table written by Spark from a generated one (say, featurized rows as K training shards), cached
    like a generated table. `write(spark, source DataFrame, path)` writes Parquet files into `path`."""

    name: str
    source: str
    write: Callable
    description: str = ""


_DERIVED: dict[str, Derived] = {}


def derived_table(spec: Derived) -> str:
    """Register a derived table (workload modules do, at import); its name is then a table like any other."""
    _DERIVED[spec.name] = spec
    return spec.name


def derived_tables() -> dict[str, Derived]:
    return dict(_DERIVED)


def known_tables() -> set[str]:
    return set(TABLES) | set(user_datasets()) | set(_DERIVED)


def table_path(name: str, scale_rows: int | None, seed: int, data_dir: Location) -> str:
    """Where a table is read from: the user's own path, or the generated (or derived) dataset for this scale."""
    return user_datasets().get(name) or str(locate(name, scale_rows, seed, data_dir))


def table_rows(name: str, scale_rows: int | None) -> int | None:
    """Rows of a generated or derived table at this scale; None for a user dataset (read its metadata)."""
    if name in _DERIVED:
        name = _DERIVED[name].source
    return TABLES[name].rows(scale_rows) if name in TABLES else None


def dataset_rows(path: str) -> int:
    """Rows of a Parquet dataset from its files' footers (no data read): a user dataset's real size."""
    import pyarrow.dataset as ds

    try:
        return ds.dataset(path, format="parquet").count_rows()
    except (OSError, pa.ArrowException) as err:
        raise DataError(f"cannot read the Parquet dataset at {path}: {str(err).splitlines()[0]}") from None


def ensure_derived(name: str, scale_rows: int, seed: int, data_dir: Location, spark, progress=print) -> Location:
    """The path of a valid cached derived table, writing it with `spark` from its source when needed."""
    progress = progress or (lambda message: None)
    spec = _DERIVED[name]
    path = dataset_dir(data_dir, name, scale_rows, seed)
    fs, final = _filesystem(path)
    if fs.get_file_info(final).type != pafs.FileType.NotFound:
        problem = verify(path)
        if problem is None:
            return path
        progress(f"cached {posixpath.basename(final)} is unusable ({problem}); rewriting")
    source = spark.read.parquet(str(ensure(spec.source, scale_rows, seed, data_dir, progress)))
    in_place = fs.type_name in _OBJECT_STORES
    staging = path if in_place else _hidden_sibling(path, uuid.uuid4().hex[:12])
    target = _filesystem(staging)[1]
    try:
        spec.write(spark, source, str(staging))
        files = []
        for info in sorted(fs.get_file_info(pafs.FileSelector(target)), key=lambda i: i.path):
            file_name = posixpath.basename(info.path)
            if info.type != pafs.FileType.File or file_name.startswith(("_", ".")):
                continue
            with fs.open_input_file(info.path) as f:
                rows = pq.ParquetFile(f).metadata.num_rows
            files.append({"name": file_name, "rows": rows, "bytes": info.size, "crc32": _crc32(fs, info.path)})
        manifest = {"table": name, "source": spec.source, "scale_rows": scale_rows, "rows": sum(f["rows"] for f in files),
                    "seed": seed, "generator_version": GENERATOR_VERSION, "files": files}
        with fs.open_output_stream(f"{target}/{MANIFEST}") as out:
            out.write(json.dumps(manifest, indent=1).encode())
        if not in_place:
            _swap_into_place(fs, target, final, path)
    except BaseException:
        _delete(fs, target)
        raise
    progress(f"wrote {name}: {manifest['rows']:,} rows in {len(files)} file(s) -> {path}")
    return path


# ---------------------------------------------------------------------------------------------- cache

# Spark (through Hadoop) and pyarrow name one filesystem differently.
_PYARROW_SCHEMES = {"s3a": "s3"}
# pyarrow's names of filesystems that cannot rename a directory (a "move" there copies object by object).
_OBJECT_STORES = ("s3", "gcs", "abfs")


def is_uri(location: Location) -> bool:
    return isinstance(location, str) and "://" in location


def as_location(text: str) -> Location:
    """A data location as typed: a URI stays text, anything else is a local path."""
    return text if "://" in text else Path(text).expanduser()


def _filesystem(location: Location) -> tuple[pafs.FileSystem, str]:
    """pyarrow's filesystem and path for a local directory or a filesystem URI."""
    if not is_uri(location):
        return pafs.LocalFileSystem(), str(Path(location).expanduser().absolute())
    scheme, rest = location.split("://", 1)
    try:
        return pafs.FileSystem.from_uri(f"{_PYARROW_SCHEMES.get(scheme, scheme)}://{rest}")
    except (pa.ArrowException, OSError) as err:
        raise DataError(f"cannot use '{location}' for data: {str(err).splitlines()[0]}. Use a local directory or "
                        "a URI that pyarrow and Spark both read: file://, hdfs://, s3a:// (or s3://), gs://") from None


def _hidden_sibling(path: Location, suffix: str) -> Location:
    """A hidden name beside `path` (a staging directory), as a URI under a URI."""
    if is_uri(path):
        parent, base = path.rstrip("/").rsplit("/", 1)
        return f"{parent}/.{base}.{suffix}"
    return Path(path).parent / f".{Path(path).name}.{suffix}"


def check_writable(data_dir: Location) -> None:
    """Refuse a data directory that cannot be written, before a run starts, saying what to change."""
    fs, root = _filesystem(data_dir)
    probe = f"{root}/.prepbench-write-check-{uuid.uuid4().hex[:8]}"
    try:
        fs.create_dir(root, recursive=True)
        with fs.open_output_stream(probe) as out:
            out.write(b"ok")
        fs.delete_file(probe)
    except (OSError, pa.ArrowException) as err:
        raise DataError(f"cannot write datasets to {data_dir}: {str(err).splitlines()[0]}. Choose a directory or URI "
                        "this user can write with --data-dir (or PREPBENCH_DATA_DIR)") from None


def dataset_dir(data_dir: Location, table: str, scale_rows: int, seed: int) -> Location:
    """Where a dataset lives: a Path under a local data_dir, a URI under a URI."""
    name = f"{table}-n{scale_rows}-seed{seed}-v{GENERATOR_VERSION}"
    return f"{data_dir.rstrip('/')}/{name}" if is_uri(data_dir) else Path(data_dir) / name


def _crc32(fs: pafs.FileSystem, path: str) -> int:
    crc = 0
    with fs.open_input_stream(path) as f:
        while block := f.read(1 << 22):
            crc = zlib.crc32(block, crc)
    return crc


def verify(path: Location) -> str | None:
    """None if the dataset at `path` is complete and intact, else what is wrong with it."""
    fs, root = _filesystem(path)
    manifest_path = f"{root}/{MANIFEST}"
    if fs.get_file_info(manifest_path).type != pafs.FileType.File:
        return "no manifest (an interrupted write?)"
    try:
        with fs.open_input_stream(manifest_path) as f:
            manifest = json.loads(f.read())
        files = manifest["files"]
    except (ValueError, KeyError) as err:
        return f"unreadable manifest: {err}"
    if manifest.get("generator_version") != GENERATOR_VERSION:
        return "made by another generator version"
    infos = fs.get_file_info([f"{root}/{entry['name']}" for entry in files])
    for entry, info in zip(files, infos):
        if info.type != pafs.FileType.File:
            return f"{entry['name']} is missing"
        if info.size != entry["bytes"]:
            return f"{entry['name']} has {info.size} bytes, expected {entry['bytes']} (truncated?)"
        if fs.type_name not in _OBJECT_STORES and _crc32(fs, info.path) != entry["crc32"]:
            return f"{entry['name']} fails its CRC-32 check (corrupt)"
    return None


def ensure(table: str, scale_rows: int, seed: int, data_dir: Location, progress=print) -> Location:
    """The path of a valid cached dataset, generating (or regenerating) it when needed."""
    progress = progress or (lambda message: None)
    path = dataset_dir(data_dir, table, scale_rows, seed)
    fs, root = _filesystem(path)
    if fs.get_file_info(root).type != pafs.FileType.NotFound:
        problem = verify(path)
        if problem is None:
            return path
        progress(f"cached {posixpath.basename(root)} is unusable ({problem}); regenerating")
    generate(table, scale_rows, seed, path, progress)
    return path


def locate(table: str, scale_rows: int, seed: int, data_dir: Location) -> Location:
    """The path of a dataset that `ensure` has already produced (cheap: the manifest must exist)."""
    path = dataset_dir(data_dir, table, scale_rows, seed)
    fs, root = _filesystem(path)
    if fs.get_file_info(f"{root}/{MANIFEST}").type != pafs.FileType.File:
        raise DataError(f"dataset {path} is missing; generate it with `python -m harness generate`")
    return path


def generate(table: str, scale_rows: int, seed: int, path: Location, progress=print) -> Location:
    """Build the table into a temporary directory beside `path`, then swap it into place.

    On an object store the files go straight to `path` and the manifest last (see the module's notes)."""
    progress = progress or (lambda message: None)
    if table not in TABLES:
        raise DataError(f"unknown table '{table}' (known: {', '.join(TABLES)})")
    spec = TABLES[table]
    rows = spec.rows(scale_rows)
    step = min(spec.chunk_rows, CHUNK_ROWS)
    bounds = [(s, min(s + step, rows)) for s in range(0, rows, step)]
    fs, final = _filesystem(path)
    parent, name = posixpath.split(final)
    in_place = fs.type_name in _OBJECT_STORES
    staging = final if in_place else f"{parent}/.{name}.{uuid.uuid4().hex[:12]}"
    if in_place:
        _delete(fs, final)
    fs.create_dir(staging, recursive=True)
    try:
        def write(index: int) -> dict:
            start, stop = bounds[index]
            file_name = f"part-{index:05d}.parquet"
            buffer = pa.BufferOutputStream()
            pq.write_table(spec.chunk(scale_rows, start, stop, _rng(seed, table, index)), buffer,
                           row_group_size=step, store_schema=False)
            content = buffer.getvalue()
            with fs.open_output_stream(f"{staging}/{file_name}") as out:
                out.write(content)
            return {"name": file_name, "rows": stop - start, "bytes": content.size, "crc32": zlib.crc32(content)}

        with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
            files = list(pool.map(write, range(len(bounds))))
        manifest = {"table": table, "scale_rows": scale_rows, "rows": rows, "seed": seed,
                    "generator_version": GENERATOR_VERSION, "files": files}
        with fs.open_output_stream(f"{staging}/{MANIFEST}") as out:
            out.write(json.dumps(manifest, indent=1).encode())
        if not in_place:
            _swap_into_place(fs, staging, final, path)
    except BaseException:
        _delete(fs, staging)
        raise
    progress(f"generated {table}: {rows:,} rows in {len(files)} file(s) -> {path}")
    return path


def _swap_into_place(fs: pafs.FileSystem, staging: str, final: str, path: Location) -> None:
    parent, name = posixpath.split(final)
    if fs.get_file_info(final).type != pafs.FileType.NotFound:
        stale = f"{parent}/.{name}.stale-{os.getpid()}"
        fs.move(final, stale)
        _delete(fs, stale)
    try:
        fs.move(staging, final)
    except OSError:
        # Another process finished the same dataset first; keep theirs if it is sound.
        if verify(path) is not None:
            raise
        _delete(fs, staging)


def _delete(fs: pafs.FileSystem, path: str) -> None:
    try:
        fs.delete_dir(path)
    except OSError:
        pass  # already gone, or never made
