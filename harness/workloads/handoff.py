"""The handoff to training: featurize, write K Parquet shards balanced by rows, read them back as a loader would.

The timed work is the whole handoff: Spark writes the shards (a round-robin repartition into K gives each
shard the same rows, give or take one), then pyarrow reads them back in record batches, the way a training
data loader streams them. Bytes written, shard balance and both throughputs are recorded with each run.
"""

import shutil
import tempfile
import time
from pathlib import Path

import pyarrow.dataset as ds
from pyspark.sql import functions as F

from . import Workload

NUMERIC = ["x1", "x3", "x4"]


def build(tables):
    features = tables["features"]
    stats = features.agg(*[F.avg(c).alias(f"{c}_mu") for c in NUMERIC],
                         *[F.stddev_samp(c).alias(f"{c}_sigma") for c in NUMERIC])
    scaled = features.crossJoin(F.broadcast(stats))
    return scaled.select("id", "label", "cat_lo",
                         *[((F.col(c) - F.col(f"{c}_mu")) / F.col(f"{c}_sigma")).alias(f"{c}_z") for c in NUMERIC])


def reference(tables):
    features = tables["features"]
    out = features[["id", "label", "cat_lo"]].copy()
    for c in NUMERIC:
        out[f"{c}_z"] = (features[c] - features[c].mean()) / features[c].std(ddof=1)
    return out


def shards_writer(k):
    def force(df):
        target = Path(tempfile.mkdtemp(prefix="prepbench-handoff-"))
        try:
            began = time.perf_counter()
            df.repartition(k).write.mode("overwrite").parquet(str(target / "shards"))
            written = time.perf_counter() - began
            files = sorted((target / "shards").glob("*.parquet"))
            began = time.perf_counter()
            shard_rows = []
            for file in files:
                shard_rows.append(sum(batch.num_rows for batch in ds.dataset(file).to_batches(batch_size=65_536)))
            read = time.perf_counter() - began
            rows = sum(shard_rows)
            return {
                "shards": len(files), "bytes_written": sum(f.stat().st_size for f in files), "rows": rows,
                "shard_rows_min": min(shard_rows), "shard_rows_max": max(shard_rows),
                "write_seconds": written, "read_seconds": read,
                "write_rows_per_second": rows / written, "read_rows_per_second": rows / read,
            }
        finally:
            shutil.rmtree(target, ignore_errors=True)

    return force


WORKLOADS = [
    Workload(
        name=f"handoff_shards_{k}",
        family="handoff",
        tables=("features",),
        build=build,
        reference=reference,
        description=f"featurize, write {k} row-balanced Parquet shards, read them back in batches with pyarrow",
        force=shards_writer(k),
    )
    for k in (4, 16)
]
