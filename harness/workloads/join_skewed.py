"""A join on a Zipf-skewed key (one key holds a fifth of the rows), with adaptive skew handling on and off.

Broadcasting is disabled so both run as sort-merge joins, where Spark's adaptive execution can split the
skewed partition; the pair shows what that is worth.
"""

from . import Workload


def build(tables):
    return tables["features"].select("id", "key_zipf", "x1").join(
        tables["join_big"].select("id3", "v2"), tables["features"].key_zipf == tables["join_big"].id3)


def frame(tables):
    left = tables["features"][["id", "key_zipf", "x1"]]
    return left.merge(tables["join_big"][["id3", "v2"]], left_on="key_zipf", right_on="id3")


WORKLOADS = [
    Workload(
        name=f"join_skewed_aqe_{state}",
        family="join",
        tables=("features", "join_big"),
        build=build,
        reference=frame,
        frame=frame,
        description=f"sort-merge join on a Zipf-skewed key, adaptive skew-join handling {state}",
        sql_conf={"spark.sql.adaptive.skewJoin.enabled": "true" if state == "on" else "false",
                  "spark.sql.autoBroadcastJoinThreshold": "-1"},
    )
    for state in ("on", "off")
]
