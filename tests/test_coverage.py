"""GPU plan coverage from the real RAPIDS plugin jar, with no GPU: every built-in workload, and user workloads
that go wrong one at a time (a query that does not parse, a table it forgot to list) without losing the others."""

import json
import os
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


USER_SQL = {
    "corr_per_key.sql": "-- family: shuffle\n-- tables: groupby\nSELECT id1, corr(v1, v3) AS c FROM groupby GROUP BY id1",
    "above_average.sql": "-- family: shuffle\n-- tables: groupby\n"
                         "SELECT id1, v3 FROM groupby WHERE v3 > (SELECT avg(v3) FROM groupby WHERE id2 = 'id001')",
    "does_not_parse.sql": "-- family: shuffle\n-- tables: groupby\nSELEC id1 FROM groupby",
    "forgot_a_table.sql": "-- family: join\n-- tables: groupby\nSELECT * FROM groupby JOIN join_small USING (id1)",
    "uses_a_view.sql": "-- family: join\n-- tables: groupby, join_small\nSELECT * FROM groupby JOIN join_small USING (id1)",
}


@pytest.fixture(scope="module")
def measured(tmp_path_factory, settings):
    """Every workload explained by the real plugin, in its own process (the plugin jar on its classpath)."""
    user = tmp_path_factory.mktemp("user-workloads")
    for name, text in USER_SQL.items():
        (user / name).write_text(text)
    out = tmp_path_factory.mktemp("coverage") / "coverage.json"
    env = {**os.environ, "PREPBENCH_DATA_DIR": str(settings.data_dir), workloads.USER_DIR_ENV: str(user)}
    runs = tmp_path_factory.mktemp("runs")
    done = subprocess.run([sys.executable, "-m", "harness", "coverage", "--out", str(out), "--results-dir", str(runs)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=1200, env=env)
    assert not any(runs.iterdir()), "coverage leaves no run directory behind"
    return done, json.loads(out.read_text())


def test_coverage_covers_every_workload_and_records_the_ones_that_fail(measured):
    done, found = measured
    assert done.returncode == 1  # two user workloads failed: said, and recorded
    built_in = {n for n, w in workloads.registry().items() if w.source.startswith("harness.")}
    assert set(found["workloads"]) == built_in | {n.removesuffix(".sql") for n in USER_SQL}
    assert "PARSE_SYNTAX_ERROR" in found["workloads"]["does_not_parse"]["error"]
    assert "TABLE_OR_VIEW_NOT_FOUND" in found["workloads"]["forgot_a_table"]["error"]  # no view left by another
    for name, result in found["workloads"].items():
        if "error" not in result:
            assert 0.0 <= result["fraction"] <= 1.0 and result["plan"], name
    assert "does_not_parse: could not be explained: ParseException" in done.stdout


def test_an_unsupported_expression_is_named_with_its_operator(measured):
    done, found = measured
    result = found["workloads"]["corr_per_key"]
    assert any(f["op"] == "HashAggregateExec" and f["expressions"] == ["Corr"] for f in result["fallbacks"])
    assert "! HashAggregateExec: not all expressions can be replaced (unsupported: Corr)" in done.stdout


def test_a_subquerys_operators_are_counted(measured):
    result = measured[1]["workloads"]["above_average"]
    assert "== subquery 1 ==" in result["plan"] and result["on_gpu"].count("HashAggregateExec") == 2


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
    assert result["fraction"] < 1.0 and any("VectorUDT" in (f["reason"] or "") for f in result["fallbacks"])


def test_the_table_says_what_was_predicted_and_where(measured):
    done, found = measured
    table = report.coverage_table(found)
    assert table.startswith("GPU plan coverage, predicted by the RAPIDS plugin (gpu engine configuration")
    assert "! BatchEvalPythonExec: GPU does not currently support the operator class" in done.stdout
    assert "coverage written to" in done.stdout and not (REPO_ROOT / "results" / "runs" / "coverage.json").exists()
