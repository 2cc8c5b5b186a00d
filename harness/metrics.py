"""What Spark says a run did, from its status store: the data Spark's REST API serves, without the web UI.

Each instrumented run is one job group. Afterwards the jobs of that group, their stages and the named
accumulators on those stages are read from the driver's status store (``AppStatusStore``, kept whether or
not the UI runs) and serialized with Spark's own Jackson, so the figures are exactly the REST API's
``/applications/<id>/stages`` ones. The RAPIDS plugin's task metrics (``gpuTime``, ``gpuSemaphoreWait``,
``gpuSpillToHostBytes``, ...) are named accumulators, so they arrive the same way on a GPU run.
"""

from __future__ import annotations

import itertools
import json
from contextlib import contextmanager

# Our name: (StageData field, factor to seconds or bytes). Spark keeps run and GC times in ms, CPU time in ns.
_SUMMED = {
    "executor_run_s": ("executorRunTime", 1e-3),
    "executor_cpu_s": ("executorCpuTime", 1e-9),
    "gc_s": ("jvmGcTime", 1e-3),
    "input_bytes": ("inputBytes", 1),
    "output_bytes": ("outputBytes", 1),
    "shuffle_read_bytes": ("shuffleReadBytes", 1),
    "shuffle_write_bytes": ("shuffleWriteBytes", 1),
    "spill_memory_bytes": ("memoryBytesSpilled", 1),
    "spill_disk_bytes": ("diskBytesSpilled", 1),
    "tasks": ("numCompleteTasks", 1),
    "failed_tasks": ("numFailedTasks", 1),
}
PLUGIN_PREFIX = "gpu"  # the plugin's task accumulators: gpuTime, gpuSemaphoreWait, gpuSpillToHostBytes, ...
_groups = itertools.count(1)


@contextmanager
def job_group(spark, label: str):
    """Tag every Spark job started inside the block; yields the group id to read the metrics by."""
    group = f"prepbench-{label}-{next(_groups)}"
    spark.sparkContext.setJobGroup(group, f"prepbench instrumented run: {label}", False)
    try:
        yield group
    finally:
        spark.sparkContext.setLocalProperty("spark.jobGroup.id", None)


def read(spark, group: str) -> tuple[dict, list[str]]:
    """Executor time, GC, shuffle, spill, memory, task and stage counts and the plugin's task metrics; and
    the physical plans the group's SQL queries ran (after adaptive execution's changes), as Spark prints them."""
    sc = spark.sparkContext._jsc.sc()
    sc.listenerBus().waitUntilEmpty()  # the stores are filled from listener events, asynchronously
    mapper = _mapper(spark)
    store = sc.statusStore()
    jobs = [j for j in json.loads(mapper.writeValueAsString(store.jobsList(None))) if j.get("jobGroup") == group]
    stage_ids = sorted({s for j in jobs for s in j["stageIds"]})
    stages = [json.loads(mapper.writeValueAsString(store.lastStageAttempt(s))) for s in stage_ids]
    job_ids = {str(j["jobId"]) for j in jobs}
    executions = json.loads(mapper.writeValueAsString(spark._jsparkSession.sharedState().statusStore().executionsList()))
    plans = [e["physicalPlanDescription"] for e in executions if job_ids & set(e.get("jobs") or {})]
    return summarize(jobs, [s for s in stages if s["status"] != "SKIPPED"]), plans


def summarize(jobs: list[dict], stages: list[dict]) -> dict:
    """The run's figures from the REST API's job and stage objects (separate from `read` to test it)."""
    figures = {name: round(sum(s.get(field) or 0 for s in stages) * factor, 6) for name, (field, factor) in _SUMMED.items()}
    figures["tasks"], figures["failed_tasks"] = int(figures["tasks"]), int(figures["failed_tasks"])
    # A stage's peakExecutionMemory is the sum of its tasks' peaks; the largest stage bounds the run's.
    figures["peak_execution_memory_bytes"] = max((s.get("peakExecutionMemory") or 0 for s in stages), default=0)
    figures["stages"] = len(stages)
    figures["jobs"] = len(jobs)
    figures["plugin"] = plugin_metrics(stages)
    return figures


def plugin_metrics(stages: list[dict]) -> dict:
    """The RAPIDS plugin's task accumulators over all stages: summed, or the largest for the Max ones."""
    found: dict[str, float] = {}
    for stage in stages:
        for acc in stage.get("accumulatorUpdates") or []:
            name, value = acc.get("name") or "", _number(acc.get("value"))
            if not name.startswith(PLUGIN_PREFIX) or value is None:
                continue
            found[name] = max(found.get(name, value), value) if "Max" in name else found.get(name, 0) + value
    return dict(sorted(found.items()))


def _number(text) -> float | None:
    try:
        return float(str(text).replace(",", ""))
    except ValueError:
        return None


_mappers: dict[int, object] = {}


def _mapper(spark):
    """Jackson with the Scala module: Spark's REST API objects to JSON, as the REST API writes them."""
    key = id(spark.sparkContext)
    if key not in _mappers:
        jvm = spark._jvm
        scala_module = getattr(getattr(jvm.com.fasterxml.jackson.module.scala, "DefaultScalaModule$"), "MODULE$")
        _mappers[key] = jvm.com.fasterxml.jackson.databind.ObjectMapper().registerModule(scala_module)
    return _mappers[key]
