"""The two largest v3 per id6 group, with a window: db-benchmark groupby question 8."""

from pyspark.sql import Window
from pyspark.sql import functions as F

from . import Workload


def build(tables):
    rank = F.row_number().over(Window.partitionBy("id6").orderBy(F.desc("v3")))
    return tables["groupby"].select("id6", "v3", rank.alias("rank")).where("rank <= 2").select("id6", "v3")


def frame(tables):
    ordered = tables["groupby"].sort_values(["id6", "v3"], ascending=[True, False])
    return ordered.groupby("id6").head(2)[["id6", "v3"]]


WORKLOAD = Workload(
    name="top2_per_group",
    family="shuffle",
    tables=("groupby",),
    build=build,
    reference=frame,
    frame=frame,
    frame_eager_only="groupby().head() has no Dask DataFrame equivalent",
    description="largest two v3 per id6 (N/100 groups), row_number over a window",
)
