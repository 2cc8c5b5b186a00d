"""A trial (what each asv benchmark process runs) over Spark Connect, its record on disk, and the run summary."""

import json

import pytest

from harness import EngineUnavailable, analysis, data, records, report, results, trial, workloads
from harness.config import scale_rows
from harness.trial import OutputMismatch, Trial

from conftest import TINY


@pytest.fixture
def run_dir(settings, tiny_tables, served):
    return records.new_run(settings)


def read(run_dir, engine, workload, scale=TINY):
    path = results.record_path(run_dir, engine, workload, scale)
    return results.Record.from_json(json.loads(path.read_text()), path.name)


def test_a_trial_records_what_it_measured(run_dir, settings):
    t = Trial(run_dir, "cpu", "groupby_sum_mean", TINY, settings)
    assert read(run_dir, "cpu", "groupby_sum_mean").status == "running"
    assert t.run_once() > 0 and t.run_once() > 0
    t.finish()
    record = read(run_dir, "cpu", "groupby_sum_mean")
    assert record.status == "ok" and len(record.samples_s) == 2 and record.rows == 10_000 and record.family == "shuffle"
    assert record.session["mode"] == "connect" and record.session["endpoint"].startswith("sc://localhost:")
    assert record.output_rows == 100 and record.fingerprint["rows"] == 100  # id3 has N/100 groups
    assert record.rows_file and (run_dir / record.rows_file).is_file()  # small: kept for row-by-row comparison
    assert record.spark_metrics["tasks"] > 0 and record.spark_metrics["shuffle_write_bytes"] > 0
    assert record.instrumented_s > 0 and record.tolerance.rel == 1e-9
    assert record.price.instance == "m7i.xlarge" and record.thresholds.max_fallback_fraction == 0.2
    partitions = record.config["spark.sql.shuffle.partitions"]
    assert partitions == {"value": "4", "source": "command line", "replaced": ["conf/hosts/local.conf:4"]}


def test_comet_runs_natively_and_its_output_is_compared_with_spark(run_dir, settings):
    for engine in ("cpu", "comet"):
        t = Trial(run_dir, engine, "join_medium_inner_int", TINY, settings)
        t.run_once()
        t.finish()
    record = read(run_dir, "comet", "join_medium_inner_int")
    assert record.role == "cpu-native" and record.status == "ok"
    assert record.agreement == [{"engine": "cpu", "agree": True, "problems": []}]
    assert record.plan["accelerator"] == "Comet" and "CometNativeScan" in record.plan["accelerated"]
    assert "spark.driver.extraClassPath" in record.config and "comet-spark" in record.config["spark.driver.extraClassPath"]["value"]


def test_an_output_is_expected_to_grow_with_its_inputs_from_a_smaller_scale_of_the_run(run_dir, settings):
    """Which way an output is checked (collected at once, or fingerprinted where it is) follows how many rows it
    is expected to have: as many as its inputs, or, where the run has it at a smaller scale, that output grown in
    proportion (groupby_sum_mean has N/100 groups: 10 at 1e3, so 100 expected at 1e4, not 10,000)."""
    smaller = "1e3"
    for table in workloads.get("groupby_sum_mean").tables:
        data.ensure(table, scale_rows(smaller), settings.seed, settings.data_dir, progress=lambda m: None)
    first = Trial(run_dir, "pandas", "groupby_sum_mean", smaller, settings)
    assert first.expected_output_rows() == 1_000  # nothing smaller in the run: as many rows as its inputs
    first.finish()
    larger = Trial(run_dir, "cpu", "groupby_sum_mean", TINY, settings)
    assert larger.expected_output_rows() == 100 == larger.record.output_rows
    assert larger.finish().status == "ok"


def test_another_process_of_the_same_benchmark_adds_its_samples(run_dir, settings):
    first = Trial(run_dir, "cpu", "join_medium_inner_int", TINY, settings)
    first.run_once()
    fingerprint = first.finish().fingerprint
    second = Trial(run_dir, "cpu", "join_medium_inner_int", TINY, settings)
    second.run_once()
    record = second.finish()
    assert len(record.samples_s) == 2 and len(record.session_start_s) == 2 and record.fingerprint == fingerprint


def test_an_engine_that_cannot_run_is_recorded_as_skipped(run_dir, settings, monkeypatch):
    from harness import session

    monkeypatch.setattr(session.gpu, "probe", lambda: ([], "NVML could not start (stand-in)"))
    with pytest.raises(EngineUnavailable):
        Trial(run_dir, "gpu", "groupby_sum_mean", TINY, settings)
    record = read(run_dir, "gpu", "groupby_sum_mean")
    assert record.status == "skipped" and record.role == "gpu" and record.price.instance == "g6.xlarge"
    assert "NVML could not start (stand-in)" in record.reason or "jar" in record.reason


def test_a_workload_an_engine_has_no_form_of_is_not_defined_never_failed(run_dir, settings):
    with pytest.raises(EngineUnavailable, match="has no form of ml_pipeline"):
        Trial(run_dir, "pandas", "ml_pipeline", TINY, settings)
    assert read(run_dir, "pandas", "ml_pipeline").status == "undefined"
    with pytest.raises(EngineUnavailable, match="needs eager pandas"):
        Trial(run_dir, "dask", "top2_per_group", TINY, settings)
    assert report.problems(analysis.analyze_dirs([run_dir])) == []


def test_a_failing_workload_is_recorded_as_failed_never_timed(run_dir, settings, monkeypatch):
    def broken(tables):
        raise ValueError("bad column")

    workload = workloads.get("groupby_sum_mean")
    monkeypatch.setitem(workloads.registry(), "groupby_sum_mean",
                        workloads.Workload(**{**workload.__dict__, "build": broken}))
    with pytest.raises(ValueError, match="bad column"):
        Trial(run_dir, "cpu", "groupby_sum_mean", TINY, settings)
    record = read(run_dir, "cpu", "groupby_sum_mean")
    assert record.status == "failed" and record.reason == "ValueError: bad column" and record.samples_s == []
    assert report.problems(analysis.analyze_dirs([run_dir])) == [f"groupby_sum_mean/cpu/{TINY}: failed: ValueError: bad column"]


def test_an_output_that_differs_from_another_engines_fails_loudly_with_the_rows(run_dir, settings):
    first = Trial(run_dir, "cpu", "groupby_sum_mean", TINY, settings)
    first.run_once()
    first.finish()
    workload = workloads.get("groupby_sum_mean")
    off_by_one = workloads.Workload(**{**workload.__dict__, "frame": lambda t: workload.frame(t).assign(
        v1_sum=lambda f: f.v1_sum + (f.id3 == "id0000000042"))})
    workloads.registry()["groupby_sum_mean"] = off_by_one
    try:
        with pytest.raises(OutputMismatch, match="output differs from the cpu engine's: exact columns"):
            Trial(run_dir, "pandas", "groupby_sum_mean", TINY, settings)
    finally:
        workloads.registry()["groupby_sum_mean"] = workload
    record = read(run_dir, "pandas", "groupby_sum_mean")
    assert record.status == "mismatch" and record.samples_s == []
    assert "id3='id0000000042'" in record.reason and "v1_sum=" in record.reason  # the first differing row, named
    assert f"groupby_sum_mean/pandas/{TINY}: mismatch" in report.problems(analysis.analyze_dirs([run_dir]))[0]


def test_dataframe_engines_agree_with_spark(run_dir, settings):
    for engine in ("cpu", "pandas", "dask"):
        t = Trial(run_dir, engine, "join_medium_left_str", TINY, settings)
        t.run_once()
        t.finish()
    (case,) = analysis.cases([results.load(run_dir)])
    assert case.outputs_agree and {e.label: e.agrees for e in case.engines} == {"cpu": True, "dask": True, "pandas": True}
    assert read(run_dir, "dask", "join_medium_left_str").session["mode"] == "cluster"


def test_handoff_records_its_figures(run_dir, settings):
    t = Trial(run_dir, "cpu", "handoff_shards_4", TINY, settings)
    t.run_once()
    figures = t.finish().figures
    assert figures["shards"] == 4 and figures["rows"] == 10_000
    assert figures["shard_rows_max"] - figures["shard_rows_min"] <= 1  # balanced by rows
    assert figures["bytes_written"] > 0 and figures["read_rows_per_second"] > 0


def test_asv_calling_setup_before_every_sample_reuses_one_trial(run_dir, settings):
    """asv_runner runs setup()/teardown() around each sample: warm-up once, every sample recorded."""
    for _ in range(3):
        t = trial.prepared(run_dir, "cpu", "groupby_uniform_keys", TINY, settings)
        t.run_once()
        t.finish()
    record = read(run_dir, "cpu", "groupby_uniform_keys")
    assert len(record.samples_s) == 3 and len(record.session_start_s) == 1
    assert record.fingerprint_s > 0 and record.warmup_s == []  # the output check was the warm-up, once


def test_the_summary_tables_every_engine_and_their_agreement(run_dir, settings):
    for engine in ("cpu", "comet", "pandas"):
        t = Trial(run_dir, engine, "groupby_sum_mean", TINY, settings)
        t.run_once()
        t.finish()
    records.update_run(run_dir, state="complete")
    text = report.summary_of(run_dir)
    assert "agreement: 1 case(s) where every engine's output agrees with the reference's" in text
    assert "cpu s" in text and "comet s" in text and "pandas s" in text and "undecided" in text


def test_a_wrong_output_that_runs_before_the_reference_never_fails_the_reference(run_dir, settings):
    """--engines pandas,cpu in that order: pandas's wrong output is recorded first; CPU Spark, the reference, runs
    after it and stays ok, and the analysis flags pandas."""
    workload = workloads.get("groupby_sum_mean")
    off_by_one = workloads.Workload(**{**workload.__dict__, "frame": lambda t: workload.frame(t).assign(
        v1_sum=lambda f: f.v1_sum + (f.id3 == "id0000000042"))})
    workloads.registry()["groupby_sum_mean"] = off_by_one
    try:
        Trial(run_dir, "pandas", "groupby_sum_mean", TINY, settings).finish()
    finally:
        workloads.registry()["groupby_sum_mean"] = workload
    Trial(run_dir, "cpu", "groupby_sum_mean", TINY, settings).finish()
    assert read(run_dir, "cpu", "groupby_sum_mean").status == "ok"
    (case,) = analysis.analyze_dirs([run_dir]).cases
    assert case.reference == "cpu" and case.engine("pandas").agrees is False
    assert any("pandas's output differs from cpu's" in p for p in report.problems(analysis.analyze_dirs([run_dir])))
