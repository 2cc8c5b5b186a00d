"""What a run records beside its times: Spark's metrics, GPU metrics (unavailable here, with the reason),
cost per million rows; what asv tracks; and the comparison with its verdict."""

import json

import pytest
from pyspark.sql import functions as F

from harness import metrics, records, report, trial
from harness.trial import Trial

from conftest import TINY


@pytest.fixture
def run_dir(settings, tiny_tables):
    return records.new_run(settings)


def test_spark_metrics_of_a_tagged_run_come_from_the_status_store(spark):
    with metrics.job_group(spark, "shuffle") as group:
        spark.range(200_000, numPartitions=3).groupBy((F.col("id") % 1000).alias("k")).count() \
            .write.format("noop").mode("overwrite").save()
    spark.range(10).count()  # outside the group: not counted
    found, plans = metrics.read(spark, group)
    assert found["jobs"] >= 1 and found["stages"] >= 2
    assert found["tasks"] >= 3 + 1 and found["failed_tasks"] == 0
    assert found["shuffle_write_bytes"] > 0 and found["shuffle_read_bytes"] == found["shuffle_write_bytes"]
    assert found["executor_run_s"] > 0 and found["executor_cpu_s"] > 0 and found["peak_execution_memory_bytes"] > 0
    assert found["plugin"] == {}  # no RAPIDS plugin in this session
    assert len(plans) == 1 and "HashAggregate" in plans[0]
    assert spark.sparkContext.getLocalProperty("spark.jobGroup.id") is None


def test_the_plugins_task_metrics_are_read_from_stage_accumulators():
    """Stage objects as Spark's REST API serves them on a GPU run (names from the plugin's GpuTaskMetrics)."""
    stages = [{"status": "COMPLETE", "numCompleteTasks": 4, "accumulatorUpdates": [
        {"id": 1, "name": "gpuTime", "value": "1500"}, {"id": 2, "name": "gpuSemaphoreWait", "value": "20"},
        {"id": 3, "name": "gpuMaxDeviceMemoryBytes", "value": "1000"}, {"id": 4, "name": "internal.metrics.x", "value": "9"}]},
        {"status": "COMPLETE", "numCompleteTasks": 2, "accumulatorUpdates": [
        {"id": 5, "name": "gpuTime", "value": "500"}, {"id": 6, "name": "gpuMaxDeviceMemoryBytes", "value": "3000"},
        {"id": 7, "name": "gpuSpillToHostBytes", "value": "not a number"}]}]
    found = metrics.summarize([{"jobId": 0}], stages)
    assert found["plugin"] == {"gpuMaxDeviceMemoryBytes": 3000.0, "gpuSemaphoreWait": 20.0, "gpuTime": 2000.0}
    assert found["tasks"] == 6 and found["stages"] == 2 and found["jobs"] == 1


def test_a_trial_records_every_metric_that_applies(run_dir, settings, cpu_session):
    t = Trial(run_dir, "cpu", "groupby_sum_mean", TINY, settings)
    t.run_once(), t.run_once(), t.run_once()
    record = json.loads(json.dumps(t.finish(), default=str))
    assert record["role"] == "cpu" and record["instrumented_s"] > 0
    assert record["spark_metrics"]["shuffle_write_bytes"] > 0 and record["spark_metrics"]["tasks"] > 0
    assert record["gpu_metrics"]["available"] is False and "NVML" in record["gpu_metrics"]["reason"]
    median = sorted(record["samples_s"])[1]
    assert record["cost"]["cost_per_mrows_usd"] == pytest.approx(1 * 0.2016 * median / 3600 / 10_000 * 1e6)
    assert record["pricing"]["gpu"]["instance"] == "g6.xlarge" and record["pricing"]["cpu"]["date"]
    values = trial.metric_values(record)
    assert values["rows_per_second"] == pytest.approx(10_000 / median)
    assert values["gpu_util_mean_pct"] is None and values["fallback_pct"] is None


def test_the_track_benchmarks_read_the_record_and_never_run_the_workload_again(run_dir, settings, cpu_session, monkeypatch):
    t = Trial(run_dir, "cpu", "groupby_uniform_keys", TINY, settings)
    t.run_once()
    t.finish()

    def no_second_run(*args, **kwargs):
        raise AssertionError("the workload ran again")

    monkeypatch.setattr(trial, "prepared", no_second_run)
    record = trial.measured(run_dir, "cpu", "groupby_uniform_keys", TINY, settings)
    assert record["spark_metrics"] == t.record["spark_metrics"]


def test_without_a_timing_run_the_track_benchmark_makes_the_one_instrumented_run(run_dir, settings, cpu_session):
    record = trial.measured(run_dir, "cpu", "groupby_skewed_keys", TINY, settings)
    assert record["spark_metrics"]["tasks"] > 0 and record["samples_s"] == []
    again = Trial(run_dir, "cpu", "groupby_skewed_keys", TINY, settings)  # asv's timing process, later
    assert again.record["spark_metrics"] == record["spark_metrics"]  # not instrumented a second time


def test_the_comparison_puts_engines_side_by_side_with_cost_and_verdict(run_dir):
    pricing = {"nodes": 1, "cpu": {"instance": "m7i.xlarge", "usd_per_hour": 0.2, "date": "d", "source": "s"},
               "gpu": {"instance": "g6.xlarge", "usd_per_hour": 0.8, "date": "d", "source": "s"}}
    base = {"workload": "groupby_sum_mean", "family": "shuffle", "scale": TINY, "rows": 1_000_000, "status": "ok",
            "pricing": pricing, "checksum": {"rows": 100, "hash": 1, "floats": {}}}
    gpu_metrics = {"available": True, "util_mean_pct": 85.0, "util_p95_pct": 99.0, "energy_per_mrows_j": 40.0}
    for engine, samples, extra in (("cpu", [10.0, 10.5, 11.0], {}),
                                   ("gpu", [2.0, 2.1, 2.2], {"gpu_metrics": gpu_metrics,
                                                             "planned_operators": {"gpu": ["GpuHashAggregateExec"] * 9,
                                                                                   "cpu": ["SortExec"]}})):
        record = {**base, **extra, "engine": engine, "role": engine, "samples_s": samples}
        record["cost"] = trial.run_cost(record)
        records.write_json(records.record_path(run_dir, engine, "groupby_sum_mean", TINY), record)
    found = json.loads(report.write_comparison(run_dir).read_text())
    assert found["host_profile"] == {"name": "local", "nodes": 1, "cpu_instance": "m7i.xlarge", "gpu_instance": "g6.xlarge"}
    row = found["rows"][0]
    assert (row["cpu_engine"], row["gpu_engine"], row["verdict"]) == ("cpu", "gpu", "share")
    assert row["speedup"] == pytest.approx(10.5 / 2.1) and row["break_even_speedup"] == pytest.approx(4.0)
    assert row["speedup_within_noise"] is False and row["outputs_agree"] is True
    cpu, gpu = row["engines"]["cpu"], row["engines"]["gpu"]
    assert cpu["cost_per_mrows_usd"] == pytest.approx(0.2 * 10.5 / 3600)
    assert gpu["cost_per_mrows_usd"] == pytest.approx(0.8 * 2.1 / 3600)
    assert gpu["fallback_fraction"] == pytest.approx(0.1) and gpu["fallbacks"] == [{"op": "SortExec", "reason": "ran on the CPU"}]
    assert gpu["gpu_metrics"]["util_mean_pct"] == 85.0
    text = report.summary(run_dir)
    assert "groupby_sum_mean  1e4    10.500  2.100  5.00x    4.00x" in text
    assert "cpu runs priced as 1 x m7i.xlarge: $0.2/h (d, s)" in text
