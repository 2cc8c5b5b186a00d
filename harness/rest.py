"""What Spark says a run did, from its monitoring REST API (``/api/v1/applications/...``).

Each instrumented run carries a job tag (``spark.addTag``); afterwards its jobs are found by that tag (Spark
Connect and classic sessions both put the tag at the end of a job's ``jobTags``), their stages and the
named accumulators on those stages are read, and the SQL executions that ran those jobs give the physical
plan that really ran (after adaptive execution). This is the documented interface: it works the same for a
Connect server this run started, for a classic session's driver, and for a remote cluster's UI. The RAPIDS
plugin's task metrics (``gpuTime``, ``gpuSemaphoreWait``, ``gpuSpillToHostBytes``, ...) are named stage
accumulators, so they arrive the same way on a GPU run.
"""

from __future__ import annotations

import time

from . import HarnessError
from .services import get_json

SETTLE_TIMEOUT_S = 10  # the REST API's stores are filled from listener events, a little after the action returns
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
PLUGIN_PREFIX = "gpu"  # the RAPIDS plugin's task accumulators: gpuTime, gpuSemaphoreWait, gpuSpillToHostBytes, ...


class MonitorError(HarnessError):
    """The monitoring REST API did not answer, or did not have the run; the message says where it looked."""


class Monitor:
    """The REST API of one Spark application (the first one its UI serves)."""

    def __init__(self, ui_url: str):
        self.base = ui_url.rstrip("/") + "/api/v1"
        self._app: str | None = None

    def _get(self, path: str):
        try:
            return get_json(f"{self._application()}{path}")
        except (OSError, ValueError) as err:
            raise MonitorError(f"Spark's monitoring REST API at {self.base} did not answer {path}: {err}") from None

    def _application(self) -> str:
        if self._app is None:
            try:
                apps = get_json(f"{self.base}/applications")
            except (OSError, ValueError) as err:
                raise MonitorError(f"Spark's monitoring REST API at {self.base} did not answer: {err}. "
                                   "Is the Spark UI enabled (spark.ui.enabled) and reachable?") from None
            if not apps:
                raise MonitorError(f"Spark's monitoring REST API at {self.base} lists no application")
            self._app = apps[0]["id"]
        return f"{self.base}/applications/{self._app}"

    def run(self, tag: str) -> tuple[dict, list[str]]:
        """The tagged run's figures and the physical plans its SQL executions ran."""
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        while True:
            jobs = [j for j in self._get("/jobs") if any(t.endswith(tag) for t in j.get("jobTags") or [])]
            ids = {j["jobId"] for j in jobs}
            # every execution, briefly (the API pages 20 by default: a long-lived server has run many), then
            # the tagged run's in full
            executions = [self._get(f"/sql/{e['id']}?details=true&planDescription=true")
                          for e in self._get("/sql?details=false&planDescription=false&offset=0&length=1000000")
                          if ids & set(e.get("successJobIds", []) + e.get("failedJobIds", []) + e.get("runningJobIds", []))]
            settled = jobs and all(j["status"] in ("SUCCEEDED", "FAILED") for j in jobs) and \
                all(e.get("status") in ("COMPLETED", "FAILED") for e in executions)
            if settled or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        if not jobs:
            raise MonitorError(f"no job tagged {tag} in Spark's monitoring REST API at {self.base}")
        stage_ids = sorted({s for j in jobs for s in j["stageIds"]})
        stages = [s for s in (self._stage(i) for i in stage_ids) if s and s.get("status") != "SKIPPED"]
        figures = summarize(jobs, stages)
        figures["failed_jobs"] = sum(j["status"] == "FAILED" for j in jobs)
        # which SQL executions of which application ran the tagged work: QualX's per-query predictions are
        # matched to a benchmark by these
        figures["application"] = self._app
        figures["sql_executions"] = sorted(e["id"] for e in executions if "id" in e)
        return figures, [e.get("planDescription") or "" for e in executions]

    def _stage(self, stage_id: int) -> dict | None:
        attempts = self._get(f"/stages/{stage_id}")
        return max(attempts, key=lambda a: a.get("attemptId", 0)) if attempts else None

    def executors(self) -> list[dict]:
        """Every executor the application has had, lost ones included, with the work each did."""
        return [{"id": e["id"], "address": e.get("hostPort"), "active": e.get("isActive"), "cores": e.get("totalCores"),
                 "tasks": e.get("totalTasks"), "failed_tasks": e.get("failedTasks"),
                 "shuffle_read_bytes": e.get("totalShuffleRead"), "shuffle_write_bytes": e.get("totalShuffleWrite")}
                for e in self._get("/allexecutors")]


def summarize(jobs: list[dict], stages: list[dict]) -> dict:
    """The run's figures from the REST API's job and stage objects."""
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
