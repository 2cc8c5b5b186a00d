"""QualX's output read as the suite reads it: per-query predictions matched to a benchmark by its application and
SQL ids, and the tools' answers that are not predictions (the model's fall-back to 1.0 when no application reads a
file, an empty run, queries it skipped) recorded as not predicted. The files below are what spark-rapids-user-tools
26.8.4 wrote for PySpark 4.1.3 event logs on this machine (trimmed to the columns read); a real, offline
qualification of a real run is in test_bench."""

import pytest

from harness import qualx
from harness.results import Record

SUMMARY = """,Vendor,Driver Host,App Name,App ID,Estimated GPU Speedup,Estimated GPU Duration,App Duration,SQL Stage Durations Sum,Unsupported Operators Stage Duration,Unsupported Operators Stage Duration Percent,Total Core Seconds,Skip by Heuristics,Not Recommended Reason,Spark Runtime,Estimated GPU Speedup Category
0,onprem,192.0.2.2,prepbench cpu,local-1796229668850,1.51,73856,111262,37856,0,12.50,209,False,N/A,SPARK,Small
"""
PER_SQL = """,appName,appId,appDuration,sqlID,scaleFactor,Duration,description,y_pred,Duration_pred,Duration_supported,speedup_pred
0,prepbench cpu,local-1796229668850,111262,0,1,24493,"Spark Connect - session_id: ""x""
plan {}",3.29,7425.3,24493.0,3.2985
2,prepbench cpu,local-1796229668850,111262,2,1,21433,q,2.99,7153.06,21433.0,2.9963
3,prepbench cpu,local-1796229668850,111262,3,1,8093,q,1.13,7108.41,8093.0,1.1385
"""
STATUS = """Event Log,Status,App ID,Attempt ID,App Name,Description
"file:/x/local-1796229668850.zstd","SUCCESS","local-1796229668850",1,"prepbench cpu","appDuration(ms): 111262"
"""
MODEL_FAILED = ("16:45:33 ERROR  [qual_20261202164516_CF127AFc] rapids.tools.qualification: Failed to execute the "
                "prediction model. Using default speed up of 1.0 for all apps. Reason - KeyError:'appId'\n")
APP = "local-1796229668850"


def output(tmp_path, summary=SUMMARY, per_sql=PER_SQL):
    run = tmp_path / "output" / "qual_20261202164433_f7F888Ec"
    (run / "xgboost_predictions").mkdir(parents=True)
    (run / "qual_core_output" / "tuning").mkdir(parents=True)
    (run / "qualification_summary.csv").write_text(summary)
    (run / "qual_core_output" / "status.csv").write_text(STATUS)
    if per_sql is not None:
        (run / "xgboost_predictions" / "per_sql.csv").write_text(per_sql)
    (run / "qual_core_output" / "tuning" / f"{APP}.log").write_text(
        f"### Recommended SPARK Configuration on GPU Cluster for App: {APP} ###\n\nSpark Properties:\n"
        "--conf spark.executor.resource.gpu.amount=1\n--conf spark.rapids.sql.concurrentGpuTasks=3\n")
    return tmp_path / "output"


def record(*sql_ids, app=APP):
    return Record(engine="cpu", workload="w", scale="1e6", status="ok",
                  spark_metrics={"application": app, "sql_executions": list(sql_ids)})


def test_a_benchmarks_queries_are_matched_by_application_and_sql_id(tmp_path):
    out = output(tmp_path)
    apps = qualx.applications(out, "Processing Completed!")
    assert apps[0]["estimated_speedup"] == 1.51 and apps[0]["unsupported_pct"] == 12.5 and apps[0]["predicted"]
    assert apps[0]["autotuner"][-2:] == ["--conf spark.executor.resource.gpu.amount=1",
                                         "--conf spark.rapids.sql.concurrentGpuTasks=3"]
    found = qualx.record_prediction(record(2, 3), qualx.read_per_sql(out), apps)
    assert found["speedup"] == pytest.approx((21433 + 8093) / (7153.06 + 7108.41))  # summed durations, not a mean
    assert (found["queries"], found["cpu_s"]) == (2, pytest.approx(29.526))


def test_the_models_fall_back_to_one_is_not_a_prediction(tmp_path):
    """No application read a file: QualX logs its failure, writes 1.0 for every application and no per_sql.csv."""
    out = output(tmp_path, SUMMARY.replace(",1.51,", ",1.00,"), per_sql=None)
    apps = qualx.applications(out, MODEL_FAILED)
    assert apps[0]["estimated_speedup"] == 1.0 and not apps[0]["predicted"]
    found = qualx.record_prediction(record(0), qualx.read_per_sql(out), apps)
    assert found["speedup"] is None and "Failed to execute the prediction model" in found["reason"]
    assert "not a prediction" in found["reason"]


def test_queries_qualx_skipped_or_an_application_it_did_not_qualify_are_not_predicted(tmp_path):
    out = output(tmp_path)
    apps = qualx.applications(out, "")
    skipped = qualx.record_prediction(record(7), qualx.read_per_sql(out), apps)
    assert skipped["speedup"] is None and "SQL ids 7 are not in its per_sql.csv" in skipped["reason"]
    other = qualx.record_prediction(record(2, app="local-1"), qualx.read_per_sql(out), apps)
    assert other["speedup"] is None and "did not qualify application local-1" in other["reason"]
    unknown = qualx.record_prediction(Record(engine="cpu", workload="w", scale="1e6"), {}, apps)
    assert unknown["speedup"] is None and "does not say which SQL executions" in unknown["reason"]


def test_the_tools_are_pinned_in_one_lock_that_names_pyprojects_version():
    from harness.versions import pairing

    pin = pairing().tools_pin
    assert f"{pin.package}=={pin.version}" in qualx.lock_file().read_text().split()
    assert "xgboost-cpu==3.0.2" in qualx.lock_file().read_text().split()  # the CPU build: 1.3 GB, not 2.1


def test_without_the_tools_bench_says_how_to_set_them_up(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty-cache"))
    with pytest.raises(qualx.ToolsMissing, match="python -m harness fetch-tools"):
        qualx.executable()
    said = []
    logs = tmp_path / "run" / "eventlogs" / "cpu"
    logs.mkdir(parents=True)
    (logs / "local-1.zstd").write_bytes(b"x")
    qualx.after_run(tmp_path / "run", None, said.append)
    assert said and said[0].startswith("QualX: not predicted: NVIDIA's qualification tools are not set up")
