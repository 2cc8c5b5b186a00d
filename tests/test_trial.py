"""A trial (what each asv benchmark process runs), its record on disk, and the run summary."""

import json

import pytest

from harness import EngineUnavailable, records, report, session, workloads
from harness.trial import Trial

from conftest import TINY


@pytest.fixture
def run_dir(settings, tiny_tables):
    return records.new_run(settings)


def test_a_trial_records_what_it_measured(run_dir, settings, cpu_session):
    trial = Trial(run_dir, "cpu", "groupby_sum_mean", TINY, settings)
    assert json.loads(trial.path.read_text())["status"] == "running"
    assert trial.run_once() > 0 and trial.run_once() > 0
    record = trial.finish()
    on_disk = json.loads(trial.path.read_text())
    assert on_disk == json.loads(json.dumps(record, default=str))
    assert on_disk["status"] == "ok" and len(on_disk["samples_s"]) == 2
    assert on_disk["rows"] == 10_000 and on_disk["family"] == "shuffle"
    assert on_disk["checksum"]["rows"] == 100  # id3 has N/100 groups
    assert on_disk["session_start_s"] == [cpu_session.start_seconds] and on_disk["warmup_s"][0] > 0
    partitions = on_disk["config"]["spark.sql.shuffle.partitions"]
    assert partitions == {"value": "4", "source": "command line", "replaced": ["conf/hosts/local.conf:4"]}


def test_secrets_never_reach_results(run_dir, settings, cpu_session, monkeypatch):
    monkeypatch.setenv("PREPBENCH_S3_TOKEN", "tok-123")
    trial = Trial(run_dir, "cpu", "standardize_clip", TINY, settings)
    trial.finish()
    other_run = records.new_run(settings)
    for text in (trial.path.read_text(), (other_run / records.RUN_FILE).read_text()):
        assert "hunter2" not in text and "tok-123" not in text
    assert "spark.hadoop.fs.s3a.secret.key" in trial.path.read_text()


def test_another_process_of_the_same_benchmark_adds_its_samples(run_dir, settings, cpu_session):
    first = Trial(run_dir, "cpu", "join_medium_inner_int", TINY, settings)
    first.run_once()
    checksum = first.finish()["checksum"]
    second = Trial(run_dir, "cpu", "join_medium_inner_int", TINY, settings)
    second.run_once()
    record = second.finish()
    assert len(record["samples_s"]) == 2 and len(record["session_start_s"]) == 2
    assert record["checksum"] == checksum


def test_an_engine_that_cannot_run_is_recorded_as_skipped(run_dir, settings, monkeypatch):
    monkeypatch.setattr(session, "_current", None)  # as in a fresh asv process
    monkeypatch.setattr(session.gpu, "probe", lambda: ([], "NVML could not start (stand-in)"))
    with pytest.raises(EngineUnavailable):
        Trial(run_dir, "gpu", "groupby_sum_mean", TINY, settings)
    record = json.loads(records.record_path(run_dir, "gpu", "groupby_sum_mean", TINY).read_text())
    assert record["status"] == "skipped"
    assert "NVML could not start (stand-in)" in record["reason"] or "jar" in record["reason"]


def test_a_failing_workload_is_recorded_as_failed_never_timed(run_dir, settings, cpu_session, monkeypatch):
    def broken(tables):
        raise ValueError("bad column")

    workload = workloads.get("groupby_sum_mean")
    monkeypatch.setitem(workloads.registry(), "groupby_sum_mean",
                        workloads.Workload(**{**workload.__dict__, "build": broken}))
    with pytest.raises(ValueError, match="bad column"):
        Trial(run_dir, "cpu", "groupby_sum_mean", TINY, settings)
    record = json.loads(records.record_path(run_dir, "cpu", "groupby_sum_mean", TINY).read_text())
    assert record["status"] == "failed" and record["reason"] == "ValueError: bad column"
    assert record["samples_s"] == []
    assert report.problems(run_dir) == [f"groupby_sum_mean/cpu/{TINY}: failed"]


def fake_record(run_dir, engine, status="ok", checksum=None, samples=(1.0, 2.0, 3.0), reason=None):
    record = {"engine": engine, "workload": "groupby_sum_mean", "family": "shuffle", "scale": TINY, "rows": 10_000,
              "status": status, "samples_s": list(samples), "session_start_s": [2.0], "warmup_s": [1.0],
              "checksum": checksum or {"rows": 100, "hash": 42, "floats": {"v3_mean": {"abs_sum": 5000.0, "count": 100}}}}
    if reason:
        record["reason"] = reason
    records.write_json(records.record_path(run_dir, engine, "groupby_sum_mean", TINY), record)


def test_summary_tables_rows_per_second_and_agreeing_engines(run_dir):
    fake_record(run_dir, "cpu")
    drifted = {"rows": 100, "hash": 42, "floats": {"v3_mean": {"abs_sum": 5000.0 * (1 + 1e-12), "count": 100}}}
    fake_record(run_dir, "gpu", checksum=drifted, samples=(0.5,))
    text = report.summary(run_dir)
    rows = [line.split() for line in text.splitlines() if line.startswith("groupby_sum_mean")]
    assert rows[:2] == [["groupby_sum_mean", "cpu", "1e4", "ok", "10,000", "2.000", "0.01", "2.00", "1.00", "3"],
                    ["groupby_sum_mean", "gpu", "1e4", "ok", "10,000", "0.500", "0.02", "2.00", "1.00", "1"]]
    assert "validation: groupby_sum_mean at 1e4: outputs agree across cpu, gpu" in text
    assert report.problems(run_dir) == []


def test_a_mismatch_between_engines_is_loud(run_dir):
    fake_record(run_dir, "cpu")
    fake_record(run_dir, "gpu", checksum={"rows": 100, "hash": 43, "floats": {"v3_mean": {"abs_sum": 5000.0, "count": 100}}})
    assert "MISMATCH: gpu vs cpu: hash: 42 != 43" in report.summary(run_dir)
    assert report.problems(run_dir) == [f"groupby_sum_mean/{TINY}: MISMATCH: gpu vs cpu: hash: 42 != 43"]


def test_summary_survives_missing_and_malformed_files(run_dir):
    fake_record(run_dir, "gpu", status="skipped", samples=(), reason="no GPU here")
    (run_dir / "broken.cpu.1e4.json").write_text("{half a rec")
    (run_dir / records.RUN_FILE).unlink()
    text = report.summary(run_dir)
    assert "run.json is missing or unreadable" in text
    assert "note: engine gpu skipped: no GPU here" in text
    assert "unreadable record: broken.cpu.1e4.json" in text


def test_atomic_writes_leave_no_temporary_files(tmp_path):
    records.write_json(tmp_path / "a.json", {"x": 1})
    records.write_json(tmp_path / "a.json", {"x": 2})
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": 2}


def test_handoff_records_its_figures(run_dir, settings, cpu_session):
    trial = Trial(run_dir, "cpu", "handoff_shards_4", TINY, settings)
    trial.run_once()
    figures = trial.finish()["figures"]
    assert figures["shards"] == 4 and figures["rows"] == 10_000
    assert figures["shard_rows_max"] - figures["shard_rows_min"] <= 1  # balanced by rows
    assert figures["bytes_written"] > 0 and figures["read_rows_per_second"] > 0


def test_an_output_that_differs_from_another_engine_fails_loudly(run_dir, settings, cpu_session):
    from harness.trial import OutputMismatch

    fake_record(run_dir, "gpu", checksum={"rows": 100, "hash": 1, "floats": {"v3_mean": {"abs_sum": 1.0, "count": 100}}})
    with pytest.raises(OutputMismatch, match="output differs from the gpu engine's: hash"):
        Trial(run_dir, "cpu", "groupby_sum_mean", TINY, settings)
    record = json.loads(records.record_path(run_dir, "cpu", "groupby_sum_mean", TINY).read_text())
    assert record["status"] == "mismatch" and record["samples_s"] == []
    assert "groupby_sum_mean/cpu/1e4: mismatch" in report.problems(run_dir)


def test_a_sql_workload_over_a_dataset_the_suite_did_not_generate(run_dir, settings, cpu_session, tmp_path, monkeypatch):
    import pandas as pd

    events = pd.DataFrame({"user": [f"u{i % 7}" for i in range(500)], "amount": [i * 0.25 for i in range(500)]})
    events.to_parquet(tmp_path / "events.parquet")
    (tmp_path / "datasets.conf").write_text(f"events  {tmp_path / 'events.parquet'}\n")
    user_dir = tmp_path / "workloads"
    user_dir.mkdir()
    (user_dir / "spend_per_user.sql").write_text(
        "-- family: shuffle\n-- tables: events\n-- description: spend per user\n"
        "SELECT user, sum(amount) AS total, count(*) AS n FROM events GROUP BY user\n")
    monkeypatch.setenv("PREPBENCH_DATASETS", str(tmp_path / "datasets.conf"))
    monkeypatch.setenv(workloads.USER_DIR_ENV, str(user_dir))
    workloads.registry.cache_clear()
    try:
        trial = Trial(run_dir, "cpu", "spend_per_user", TINY, settings)
        output = trial.workload.build(trial.tables).toPandas().sort_values("user").reset_index(drop=True)
        trial.run_once()
        record = trial.finish()
        monkeypatch.setattr(session, "_current", None)  # the GPU engine's path, as in its own asv process
        monkeypatch.setattr(session.gpu, "probe", lambda: ([], "no GPU (stand-in)"))
        with pytest.raises(EngineUnavailable):
            Trial(run_dir, "gpu", "spend_per_user", TINY, settings)
    finally:
        workloads.registry.cache_clear()
    expected = events.groupby("user", as_index=False).agg(total=("amount", "sum"), n=("amount", "size"))
    assert output["user"].tolist() == expected["user"].tolist()
    assert output["total"].tolist() == pytest.approx(expected["total"].tolist())
    assert output["n"].tolist() == expected["n"].tolist()
    assert record["status"] == "ok" and record["rows"] == 500 and record["checksum"]["rows"] == 7
    gpu = json.loads(records.record_path(run_dir, "gpu", "spend_per_user", TINY).read_text())
    assert gpu["status"] == "skipped" and "no GPU (stand-in)" in gpu["reason"]


def test_asv_calling_setup_before_every_sample_reuses_one_trial(run_dir, settings, cpu_session):
    """asv_runner runs setup()/teardown() around each sample: warm-up once, every sample recorded."""
    from harness import trial

    for _ in range(3):
        t = trial.prepared(run_dir, "cpu", "groupby_uniform_keys", TINY, settings)
        t.run_once()
        t.finish()
    record = json.loads(t.path.read_text())
    assert len(record["samples_s"]) == 3
    assert len(record["warmup_s"]) == 1 and len(record["session_start_s"]) == 1
