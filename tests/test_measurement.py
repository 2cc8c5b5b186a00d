"""What a run records beside its times: Spark's metrics from the monitoring REST API (found by the run's job
tag), the plan that ran, cost per million rows; what asv tracks; and the comparison with its verdict."""

import subprocess
import sys

import pytest

from harness import REPO_ROOT, coverage, records, rest, results, trial
from harness.config import merge
from harness.trial import Trial

from conftest import TINY


@pytest.fixture
def run_dir(settings, tiny_tables, served):
    return records.new_run(settings)


def test_spark_metrics_of_a_tagged_run_come_from_the_rest_api(spark, served):
    from pyspark.sql import functions as F

    spark.addTag("prepbench-test-shuffle")
    spark.range(200_000, numPartitions=3).groupBy((F.col("id") % 1000).alias("k")).count() \
        .write.format("noop").mode("overwrite").save()
    spark.removeTag("prepbench-test-shuffle")
    spark.range(10).count()  # not tagged: not counted
    found, plans = rest.Monitor(served["cpu"]["ui"]).run("prepbench-test-shuffle")
    assert found["jobs"] >= 1 and found["stages"] >= 2 and found["failed_jobs"] == 0
    assert found["tasks"] >= 3 + 1 and found["failed_tasks"] == 0
    assert found["shuffle_write_bytes"] > 0 and found["shuffle_read_bytes"] == found["shuffle_write_bytes"]
    assert found["executor_run_s"] > 0 and found["executor_cpu_s"] > 0 and found["peak_execution_memory_bytes"] > 0
    assert found["plugin"] == {}  # no RAPIDS plugin in this session
    assert len(plans) == 1 and "HashAggregate" in plans[0] and "isFinalPlan=true" in plans[0]


def test_the_plugins_task_metrics_are_read_from_stage_accumulators():
    """Stage objects as Spark's REST API serves them on a GPU run (names from the plugin's GpuTaskMetrics)."""
    stages = [{"status": "COMPLETE", "numCompleteTasks": 4, "accumulatorUpdates": [
        {"id": 1, "name": "gpuTime", "value": "1500"}, {"id": 2, "name": "gpuSemaphoreWait", "value": "20"},
        {"id": 3, "name": "gpuMaxDeviceMemoryBytes", "value": "1000"}, {"id": 4, "name": "internal.metrics.x", "value": "9"}]},
        {"status": "COMPLETE", "numCompleteTasks": 2, "accumulatorUpdates": [
        {"id": 5, "name": "gpuTime", "value": "500"}, {"id": 6, "name": "gpuMaxDeviceMemoryBytes", "value": "3000"},
        {"id": 7, "name": "gpuSpillToHostBytes", "value": "not a number"}]}]
    found = rest.summarize([{"jobId": 0}], stages)
    assert found["plugin"] == {"gpuMaxDeviceMemoryBytes": 3000.0, "gpuSemaphoreWait": 20.0, "gpuTime": 2000.0}
    assert found["tasks"] == 6 and found["stages"] == 2 and found["jobs"] == 1


GPU_PLAN = """== Physical Plan ==
AdaptiveSparkPlan (9)
+- == Final Plan ==
   GpuColumnarToRow (8)
   +- GpuHashAggregate (7)
      +- AQEShuffleRead (6)
         +- ShuffleQueryStage (5)
            +- GpuColumnarExchange (4)
               +- GpuHashAggregate (3)
                  +- SortExec (2)
                     +- GpuFileGpuScan parquet  (1)
+- == Initial Plan ==
   HashAggregate (12)

(1) GpuFileGpuScan parquet
"""


def test_the_executed_plan_says_which_operators_the_accelerator_ran():
    found = coverage.executed_plan(merge("gpu"), [GPU_PLAN])
    assert found == {"source": "executed plan", "accelerator": "RAPIDS Accelerator",
                     "accelerated": ["GpuHashAggregate", "GpuColumnarExchange", "GpuHashAggregate", "GpuFileGpuScan"],
                     "other": ["SortExec"]}
    assert coverage.executed_plan(merge("cpu"), [GPU_PLAN]) == {}  # no accelerator: nothing to say


def test_a_trial_records_every_metric_that_applies(run_dir, settings):
    t = Trial(run_dir, "cpu", "groupby_sum_mean", TINY, settings)
    t.run_once(), t.run_once(), t.run_once()
    record = t.finish()
    assert record.role == "cpu" and record.instrumented_s > 0
    assert record.spark_metrics["shuffle_write_bytes"] > 0 and record.spark_metrics["tasks"] > 0
    assert record.gpu_metrics == {}  # a CPU engine: not sampled
    median = sorted(record.samples_s)[1]
    assert record.cost_per_mrows_usd == pytest.approx(1 * 0.2016 * median / 3600 / 10_000 * 1e6)
    assert record.rows_per_s == pytest.approx(10_000 / median) and record.fallback_fraction is None
    assert record.executors and record.executors[0]["id"] == "driver"


def test_connect_and_classic_sessions_report_the_same_metrics(run_dir, settings, tmp_path):
    """The same workload over Spark Connect and in a classic session (its own JVM, a child process): the REST
    API's figures that do not depend on timing agree."""
    connect = Trial(run_dir, "cpu", "join_medium_inner_str", TINY, settings).record
    classic_dir = records.new_run(settings)
    done = subprocess.run([sys.executable, "-c", (
        "import sys; from harness import config, trial; s = config.RunSettings.from_env(); "
        f"t = trial.Trial(sys.argv[1], 'cpu', 'join_medium_inner_str', '{TINY}', s); t.run_once(); t.finish()"),
        str(classic_dir)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
        env={**__import__("os").environ, **settings.to_env(), "PREPBENCH_SESSION": "classic", "PREPBENCH_SERVICES": ""})
    assert done.returncode == 0, done.stderr[-3000:]
    classic = results.load(classic_dir).records[0]
    assert classic.session["mode"] == "classic" and connect.session["mode"] == "connect"
    for figure in ("jobs", "stages", "tasks", "failed_tasks", "input_bytes", "shuffle_write_bytes"):
        assert classic.spark_metrics[figure] == connect.spark_metrics[figure], figure
    assert classic.fingerprint == connect.fingerprint


def test_the_track_benchmarks_read_the_record_and_never_run_the_workload_again(run_dir, settings, monkeypatch):
    t = Trial(run_dir, "cpu", "groupby_uniform_keys", TINY, settings)
    t.run_once()
    t.finish()

    def no_second_run(*args, **kwargs):
        raise AssertionError("the workload ran again")

    monkeypatch.setattr(trial, "prepared", no_second_run)
    record = trial.measured(run_dir, "cpu", "groupby_uniform_keys", TINY, settings)
    assert record.spark_metrics == t.record.spark_metrics


def test_without_a_timing_run_the_track_benchmark_makes_the_one_instrumented_run(run_dir, settings):
    record = trial.measured(run_dir, "cpu", "groupby_skewed_keys", TINY, settings)
    assert record.spark_metrics["tasks"] > 0 and record.samples_s == []
    trial._prepared.clear()
    again = Trial(run_dir, "cpu", "groupby_skewed_keys", TINY, settings)  # asv's timing process, later
    assert again.record.spark_metrics == record.spark_metrics  # not instrumented a second time
