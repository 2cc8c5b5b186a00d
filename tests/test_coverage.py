"""GPU plan coverage from the real RAPIDS plugin jar, with no GPU: every built-in workload, and user workloads
that go wrong one at a time (a query that does not parse, a table it forgot to list) without losing the others."""

import json
import os
import re
import subprocess
import sys

import pytest

from harness import REPO_ROOT, coverage, report, workloads

pytestmark = pytest.mark.plugin_jar

PLAN = """*Exec <ProjectExec> will run on GPU
  *Expression <Alias> pythonUDF0#551 AS x1_z#550 will run on GPU
  ! <BatchEvalPythonExec> cannot run on GPU because GPU does not currently support the operator class org.apache.spark.sql.execution.python.BatchEvalPythonExec
    @Expression <PythonUDF> clip_z(x1#498)#549 could not block GPU acceleration
    *Exec <FileSourceScanExec> will run on GPU
    #Exec <ColumnarToRowExec> will be removed
    !Exec <HashAggregateExec> cannot run on GPU because not all expressions can be replaced
      ! <Corr> corr(cast(v1#6 as double), v3#8) cannot run on GPU because GPU does not currently support the operator class Corr
== subquery 1 ==
*Exec <HashAggregateExec> will run on GPU
"""


def test_the_plugins_marks_are_read_with_the_expressions_that_stop_an_operator():
    result = coverage.parse("w", PLAN)
    assert result.on_gpu == ["ProjectExec", "FileSourceScanExec", "HashAggregateExec"]  # the subquery's included
    assert result.on_cpu == ["BatchEvalPythonExec", "HashAggregateExec"] and result.fraction == 0.6
    assert result.fallbacks[0]["reason"].startswith("GPU does not currently support the operator class")
    assert result.fallbacks[1] == {"kind": "Exec", "op": "HashAggregateExec", "reason": "not all expressions can be "
                                   "replaced", "expressions": ["Corr"]}


@pytest.fixture(scope="module")
def measured(e2e):
    """Every workload explained by the real plugin, in the one end-to-end run the tests share (its coverage.json):
    the built-in ones and user workloads that go wrong one at a time (a query that does not parse, a table it
    forgot to list), beside the ones that are right (a subquery, an unsupported expression)."""
    return e2e.found.runs[0].coverage


def test_the_coverage_command_writes_where_it_is_told_and_leaves_no_run_directory(tmp_path, settings):
    runs = tmp_path / "runs"
    done = subprocess.run([sys.executable, "-m", "harness", "coverage", "--workloads", "top_keys_by_value", "--out",
                           str(tmp_path / "coverage.json"), "--results-dir", str(runs)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PREPBENCH_DATA_DIR": str(settings.data_dir)})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    found = json.loads((tmp_path / "coverage.json").read_text())
    assert set(found["workloads"]) == {"top_keys_by_value"} and found["workloads"]["top_keys_by_value"]["fraction"] == 1.0
    assert "coverage written to" in done.stdout and not runs.exists()


def test_coverage_covers_every_workload_and_records_the_ones_that_fail(measured):
    found = measured
    built_in = {n for n, w in workloads.registry().items() if w.source.startswith("harness.")}
    assert built_in <= set(found["workloads"]) and {"q_syntax_error", "q_forgot_a_table"} <= set(found["workloads"])
    assert "PARSE_SYNTAX_ERROR" in found["workloads"]["q_syntax_error"]["error"]
    assert "TABLE_OR_VIEW_NOT_FOUND" in found["workloads"]["q_forgot_a_table"]["error"]  # no table left by another
    for name, result in found["workloads"].items():
        if "error" not in result:
            assert 0.0 <= result["fraction"] <= 1.0 and result["plan"], name
    assert re.search(r"q_syntax_error\s+could not be explained: ParseException", report.coverage_table(found))


def test_an_unsupported_expression_is_named_with_its_operator(measured):
    result = measured["workloads"]["q_corr_per_key"]
    assert any(f["op"] == "HashAggregateExec" and f["expressions"] == ["Corr"] for f in result["fallbacks"])
    assert "! HashAggregateExec: not all expressions can be replaced (unsupported: Corr)" in report.coverage_table(measured)


def test_a_subquerys_operators_are_counted(measured):
    result = measured["workloads"]["q_above_average"]
    assert "== subquery 1 ==" in result["plan"] and result["on_gpu"].count("HashAggregateExec") == 2


def test_built_in_featurize_runs_entirely_on_the_gpu_plan(measured):
    result = measured["workloads"]["standardize_clip"]
    assert result["fraction"] == 1.0 and result["on_cpu"] == [] and result["fallbacks"] == []


def test_row_at_a_time_python_udf_falls_back_with_the_plugins_reason(measured):
    result = measured["workloads"]["standardize_clip_udf"]
    assert "BatchEvalPythonExec" in result["on_cpu"] and result["fraction"] < 1.0
    reasons = [f["reason"] for f in result["fallbacks"] if f["op"] == "BatchEvalPythonExec"]
    assert reasons == ["GPU does not currently support the operator class "
                       "org.apache.spark.sql.execution.python.BatchEvalPythonExec"]


def test_spark_ml_vectors_keep_operators_on_the_cpu(measured):
    result = measured["workloads"]["ml_pipeline"]
    assert result["fraction"] < 1.0 and any("VectorUDT" in (f["reason"] or "") for f in result["fallbacks"])


def test_the_table_says_what_was_predicted_and_where(measured):
    table = report.coverage_table(measured)
    assert table.startswith("GPU plan coverage, predicted by the RAPIDS plugin (gpu engine configuration")
    assert "! BatchEvalPythonExec: GPU does not currently support the operator class" in table
