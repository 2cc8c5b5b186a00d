"""Fact table joined to a dimension of N/1e3 rows on an integer key: db-benchmark join question 2."""

from . import Workload


def build(tables):
    return tables["join_x"].join(tables["join_medium"].select("id2", "v2"), on="id2", how="inner")


def reference(tables):
    return tables["join_x"].merge(tables["join_medium"][["id2", "v2"]], on="id2", how="inner")


WORKLOAD = Workload(
    name="join_medium_inner",
    family="join",
    tables=("join_x", "join_medium"),
    build=build,
    reference=reference,
    description="inner join of the fact table to a dimension of N/1e3 rows on an integer key (90% match)",
)
