"""Reading the handoff: how fast the shards Spark wrote for training load into memory, per shard layout.

Spark writes the featurized rows (the handoff workloads' output) once per layout as K row-balanced Parquet
shards with a row-group size and a compression codec; the timed work is reading every shard into memory:
Spark's scan under the Spark engines, pyarrow under pandas, cuDF (into GPU memory) under cudf.pandas, and
Dask's workers under Dask (and dask-cudf). Bytes read per second sit beside the host's ceilings in the
records, so the suite says which layout feeds the GPUs best.
"""

from .. import data
from . import Workload
from .handoff import build as featurize

# (shards, rows per row group, codec): few big shards against many small ones, snappy against zstd and none.
LAYOUTS = ((4, 1_000_000, "snappy"), (16, 1_000_000, "snappy"), (16, 128_000, "zstd"), (16, 1_000_000, "none"))


def shards_writer(k: int, row_group: int, codec: str):
    def write(spark, features, path):
        (featurize({"features": features}).repartition(k).write.mode("overwrite")
         .option("compression", codec).option("parquet.block.row.count.limit", str(row_group)).parquet(path))

    return write


def _name(k: int, row_group: int, codec: str) -> str:
    return f"k{k}_rg{row_group // 1000}k_{codec}"


def _table(k: int, row_group: int, codec: str) -> str:
    return data.derived_table(data.Derived(f"handoff_shards_{_name(k, row_group, codec)}", "features",
                                           shards_writer(k, row_group, codec),
                                           f"{k} shards, {row_group:,}-row groups, {codec}"))


def read_all(table: str):
    def read(tables):
        return tables[table]

    return read


def declare(k: int, row_group: int, codec: str) -> Workload:
    table = _table(k, row_group, codec)
    return Workload(
        name=f"handoff_read_{_name(k, row_group, codec)}",
        family="handoff_read",
        tables=(table,),
        build=read_all(table),
        reference=read_all(table),
        frame=read_all(table),
        description=f"read the featurized handoff written as {k} Parquet shards ({row_group:,}-row groups, {codec}) "
                    "into memory",
    )


WORKLOADS = [declare(*layout) for layout in LAYOUTS]
