"""GPU plan coverage from the real RAPIDS plugin jar, with no GPU: the test env fetches the jar first."""

import json
import subprocess
import sys

import pytest

from harness import REPO_ROOT, coverage, plugin, report, workloads

PLAN = """*Exec <ProjectExec> will run on GPU
  *Expression <Alias> pythonUDF0#551 AS x1_z#550 will run on GPU
  ! <BatchEvalPythonExec> cannot run on GPU because GPU does not currently support the operator class org.apache.spark.sql.execution.python.BatchEvalPythonExec
    @Expression <PythonUDF> clip_z(x1#498)#549 could not block GPU acceleration
    *Exec <FileSourceScanExec> will run on GPU
    #Exec <ColumnarToRowExec> will be removed
    !Exec <ShuffleExchangeExec> cannot run on GPU because Columnar exchange without columnar children is inefficient
"""


def test_the_plugins_marks_are_read_including_operators_it_has_no_rule_for():
    result = coverage.parse("w", PLAN)
    assert result.on_gpu == ["ProjectExec", "FileSourceScanExec"]
    assert result.on_cpu == ["BatchEvalPythonExec", "ShuffleExchangeExec"]
    assert result.fraction == 0.5
    assert result.fallbacks[0] == {"kind": "Exec", "op": "BatchEvalPythonExec", "reason":
                                   "GPU does not currently support the operator class "
                                   "org.apache.spark.sql.execution.python.BatchEvalPythonExec"}


@pytest.fixture(scope="module")
def measured(tmp_path_factory, settings):
    """Every workload explained by the real plugin, in its own process (the plugin jar on its classpath)."""
    plugin.find_jar()  # fails with how to fetch it; `tox -e test` fetches it first
    results = tmp_path_factory.mktemp("coverage")
    done = subprocess.run([sys.executable, "-m", "harness", "coverage", "--results-dir", str(results)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=1200,
                          env={**__import__("os").environ, "PREPBENCH_DATA_DIR": str(settings.data_dir)})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    run_dir = report.latest_run(results)
    return run_dir, json.loads((run_dir / coverage.COVERAGE_FILE).read_text()), done.stdout


def test_coverage_covers_every_workload(measured):
    _, found, _ = measured
    assert set(found["workloads"]) == set(workloads.registry())
    for name, result in found["workloads"].items():
        assert 0.0 <= result["fraction"] <= 1.0 and result["plan"], name
        assert len(result["on_gpu"]) + len(result["on_cpu"]) > 0, name


def test_built_in_featurize_runs_entirely_on_the_gpu_plan(measured):
    result = measured[1]["workloads"]["standardize_clip"]
    assert result["fraction"] == 1.0 and result["on_cpu"] == [] and result["fallbacks"] == []


def test_row_at_a_time_python_udf_falls_back_with_the_plugins_reason(measured):
    result = measured[1]["workloads"]["standardize_clip_udf"]
    assert "BatchEvalPythonExec" in result["on_cpu"] and result["fraction"] < 1.0
    reasons = [f["reason"] for f in result["fallbacks"] if f["op"] == "BatchEvalPythonExec"]
    assert reasons == ["GPU does not currently support the operator class "
                       "org.apache.spark.sql.execution.python.BatchEvalPythonExec"]


def test_spark_ml_vectors_keep_operators_on_the_cpu(measured):
    result = measured[1]["workloads"]["ml_pipeline"]
    assert result["fraction"] < 1.0
    assert any("VectorUDT" in (f["reason"] or "") for f in result["fallbacks"])


def test_the_coverage_command_prints_the_table(measured):
    _, _, stdout = measured
    assert "GPU plan coverage (gpu engine configuration" in stdout
    assert "! BatchEvalPythonExec: GPU does not currently support the operator class" in stdout


GPU_PLAN = """== Physical Plan ==
OverwriteByExpression noop-table (14)
+- AdaptiveSparkPlan (13)
   +- == Final Plan ==
      ResultQueryStage (9)
      +- GpuColumnarToRow (8)
         +- GpuProject (7)
            +- GpuRowToColumnar (6)
               +- BatchEvalPython (5)
                  +- GpuColumnarToRow (4)
                     +- GpuBroadcastNestedLoopJoin (3)
                        :- GpuFileGpuScan parquet  (1)
                        +- GpuBroadcastExchange (2)
   +- == Initial Plan ==
      Project (12)
      +- BatchEvalPython (11)
         +- FileScan parquet  (10)


(1) GpuFileGpuScan parquet
Output [2]: [id#0L, x1#1]
"""


def test_the_operators_that_ran_are_split_into_the_plugins_and_the_cpus(spark, tiny_tables, settings):
    """A GPU run's final plan (formatted, as Spark's SQL status store keeps it), and a real CPU run's."""
    assert coverage.executed_operators([GPU_PLAN]) == {
        "gpu": ["GpuProject", "GpuBroadcastNestedLoopJoin", "GpuFileGpuScan", "GpuBroadcastExchange"],
        "cpu": ["BatchEvalPython"]}
    from harness import metrics

    table = spark.read.parquet(str(tiny_tables["groupby"]))
    with metrics.job_group(spark, "plan") as group:
        table.groupBy("id1").count().write.format("noop").mode("overwrite").save()
    _, plans = metrics.read(spark, group)
    assert "== Final Plan ==" in plans[0]
    assert coverage.executed_operators(plans) == {"gpu": [], "cpu": ["HashAggregate", "Exchange", "HashAggregate", "Scan"]}
