"""The fact table joined to right-hand tables of three sizes, on integer and on string keys.

Shapes follow db-benchmark's join questions: a small table (N/1e6 rows, broadcast), a medium one (N/1e3,
inner and left outer) and one as big as the fact table (N rows, a shuffle join). Each right-hand table holds
90% of the keys the fact table uses.
"""

from pyspark.sql import functions as F

from . import Workload

# size: (right table, integer key, string key)
RIGHT = {"small": ("join_small", "id1", "id4"), "medium": ("join_medium", "id2", "id5"), "big": ("join_big", "id3", "id6")}
KEY_KIND = {"int": 1, "str": 2}


def build_with(size, key_kind, how, broadcast):
    table, key = RIGHT[size][0], RIGHT[size][KEY_KIND[key_kind]]

    def build(tables):
        right = tables[table].select(key, "v2")
        return tables["join_x"].join(F.broadcast(right) if broadcast else right, on=key, how=how)

    return build


def frame_with(size, key_kind, how):
    table, key = RIGHT[size][0], RIGHT[size][KEY_KIND[key_kind]]

    def frame(tables):  # a left join's unmatched rows get NaN in v2 (a float), as Spark's get null: both missing
        return tables["join_x"].merge(tables[table][[key, "v2"]], on=key, how=how)

    return frame


def declare(size, key_kind, how, broadcast=False):
    table = RIGHT[size][0]
    strategy = "broadcast" if broadcast else ("shuffle" if size == "big" else how)
    form = frame_with(size, key_kind, how)
    return Workload(
        name=f"join_{size}_{strategy}_{key_kind}",
        family="join",
        tables=("join_x", table),
        build=build_with(size, key_kind, how, broadcast),
        reference=form,
        frame=form,
        description=f"{'left outer' if how == 'left' else 'inner'} join of the fact table to {table} "
                    f"({'N/1e6' if size == 'small' else 'N/1e3' if size == 'medium' else 'N'} rows) on a "
                    f"{'string' if key_kind == 'str' else 'integer'} key{', broadcast' if broadcast else ''}",
    )


WORKLOADS = [
    declare(size, kind, how, broadcast)
    for size, how, broadcast in (("small", "inner", True), ("medium", "inner", False), ("medium", "left", False),
                                 ("big", "inner", False))
    for kind in KEY_KIND
]
