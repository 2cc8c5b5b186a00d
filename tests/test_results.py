"""The typed result model: records read once and checked, cases of any number of engines chosen by role, cases
that pair runs of two hosts, and runs that did not finish. Records here are written by the real writer
(``Record.save`` and ``records.new_run``), never by hand."""

import json

import pytest

from harness import records, report, results
from harness.config import RunSettings
from harness.fingerprint import Tolerance
from harness.results import Price, Record

FINGERPRINT = {"version": 2, "rows": 100, "exact_columns": ["k"], "hash_lo": 5, "hash_hi": 7,
               "floats": {"x": {"kind": "float", "count": 100, "missing": 0, "posinf": 0, "neginf": 0,
                                "sum": 50.0, "sum_abs": 50.0, "sum_sq": 40.0, "weighted": 49.0}}}
PRICES = {"cpu": Price("m7i.xlarge", 0.2, 1, "d", "s"), "cpu-native": Price("m7i.xlarge", 0.2, 1, "d", "s"),
          "gpu": Price("g6.xlarge", 0.8, 1, "d", "s")}
ENVIRONMENT = {"hostname": "box", "cores": 2, "cpu": "test CPU", "gpus": [], "commit": "abc", "spark": "4.1.3"}


def new_run(tmp_path, name="runs", host="local", environment=None):
    settings = RunSettings(host=host, engines=("cpu",), scales=("1e4",), results_dir=tmp_path / name)
    return records.new_run(settings, environment_=environment or ENVIRONMENT)


def write(run_dir, engine, role="cpu", samples=(1.0, 1.1), status="ok", scale="1e6", workload="w", fingerprint=None,
          price=None, **fields):
    record = Record(engine=engine, workload=workload, scale=scale, status=status, role=role, family="shuffle",
                    samples_s=list(samples), rows=1_000_000, fingerprint=fingerprint or FINGERPRINT,
                    price=price or PRICES[role], **fields)
    record.save(run_dir)
    return record


def finished(run_dir):
    records.update_run(run_dir, state="complete", ended=records.now())
    return run_dir


def test_a_record_round_trips_through_the_model(tmp_path):
    run_dir = finished(new_run(tmp_path))
    write(run_dir, "cpu", tolerance=Tolerance(1e-6, 1e-9))
    (record,) = results.load(run_dir).records
    assert record.median_s == pytest.approx(1.05) and record.rows_per_s == pytest.approx(1e6 / 1.05)
    assert record.cost_per_mrows_usd == pytest.approx(0.2 * 1.05 / 3600)
    assert record.tolerance == Tolerance(1e-6, 1e-9) and record.name == "w.cpu.1e6.json"


@pytest.mark.parametrize("change, why", [
    (lambda d: d.pop("engine"), "field 'engine' is missing"),
    (lambda d: d.update(samples_s="fast"), "field 'samples_s' must be a list of numbers"),
    (lambda d: d.update(rows="many"), "field 'rows' must be a whole number, not str"),
    (lambda d: d.update(status="great"), "status 'great' is not one of"),
    (lambda d: d.update(schema=9), "written by a newer prepbench (this one reads schema 2)"),
])
def test_a_record_with_a_missing_or_wrong_field_is_listed_never_fatal(tmp_path, change, why):
    run_dir = finished(new_run(tmp_path))
    write(run_dir, "cpu")
    bad = write(run_dir, "gpu", role="gpu")
    path = run_dir / bad.name
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    run = results.load(run_dir)
    assert [r.engine for r in run.records] == ["cpu"]
    assert run.unreadable[0][0] == bad.name and why in run.unreadable[0][1]
    text = report.summary(run_dir)
    assert f"unreadable record: {bad.name}: " in text and why in text


def test_a_schema_1_record_is_read_but_its_checksum_is_not_compared(tmp_path):
    run_dir = finished(new_run(tmp_path))
    (run_dir / "w.gpu.1e6.json").write_text(json.dumps({
        "schema": 1, "engine": "gpu", "workload": "w", "scale": "1e6", "status": "ok", "samples_s": [0.5],
        "rows": 10, "pricing": {"nodes": 1, "gpu": {"instance": "g6.xlarge", "usd_per_hour": 0.8}},
        "planned_operators": {"gpu": ["GpuProject"], "cpu": ["ProjectExec"]}, "checksum": {"rows": 1}}))
    (record,) = results.load(run_dir).records
    assert record.role == "gpu" and record.price.usd_per_hour == 0.8 and record.fingerprint is None
    assert record.fallback_fraction == 0.5


def test_scales_are_matched_exactly_not_by_prefix(tmp_path):
    """Scale 100000 is not 1000000: the old glob `{scale}*` compared them."""
    run_dir = finished(new_run(tmp_path))
    write(run_dir, "cpu", scale="100000")
    write(run_dir, "comet", role="cpu-native", scale="1000000", fingerprint={**FINGERPRINT, "hash_lo": 6})
    found = results.cases([results.load(run_dir)])
    assert [(c.scale, [e.label for e in c.engines]) for c in found] == [("100000", ["cpu"]), ("1000000", ["comet"])]
    assert all(c.outputs_agree is None for c in found)


def test_engines_are_chosen_by_role_and_each_keeps_its_own_figures(tmp_path):
    """With cpu, gpu and gpu-rapids-shuffle, the old site showed one GPU engine's speedup beside the other's time."""
    run_dir = finished(new_run(tmp_path))
    write(run_dir, "cpu", samples=(10.0, 10.2))
    write(run_dir, "gpu", role="gpu", samples=(2.0, 2.1), gpu_metrics={"available": True, "util_mean_pct": 80.0})
    write(run_dir, "gpu-rapids-shuffle", role="gpu", samples=(1.0, 1.1), gpu_metrics={"available": True, "util_mean_pct": 85.0})
    (case,) = results.cases([results.load(run_dir)])
    by = {e.label: e for e in case.engines}
    assert [e.label for e in case.engines] == ["cpu", "gpu", "gpu-rapids-shuffle"]
    assert case.verdict.engine == "gpu-rapids-shuffle" and case.verdict.speedup == pytest.approx(10.1 / 1.05)
    assert by["gpu"].speedups["cpu"] == pytest.approx(10.1 / 2.05) and by["gpu"].record.median_s == 2.05
    exported = {e["label"]: e for e in results.comparison_json([results.load(run_dir)], [case])["cases"][0]["engines"]}
    assert exported["gpu"]["median_s"] == 2.05 and exported["gpu-rapids-shuffle"]["median_s"] == 1.05


def test_outputs_are_compared_with_the_cpu_spark_engine(tmp_path):
    run_dir = finished(new_run(tmp_path))
    write(run_dir, "cpu")
    write(run_dir, "comet", role="cpu-native")
    write(run_dir, "pandas", backend="pandas", fingerprint={**FINGERPRINT, "hash_hi": 8})
    (case,) = results.cases([results.load(run_dir)])
    assert case.reference == "cpu" and case.outputs_agree is False
    assert {e.label: e.agrees for e in case.engines} == {"cpu": True, "pandas": False, "comet": True}
    assert any("row hashes differ" in p for p in case.engine("pandas").problems)
    assert any("pandas's output differs from cpu's" in p for p in report.problems(run_dir))


def test_a_case_pairs_runs_of_two_hosts_each_priced_as_its_own_cluster(tmp_path):
    cpu_cluster = finished(new_run(tmp_path, "a", "standalone", {**ENVIRONMENT, "hostname": "cpu-head"}))
    gpu_cluster = finished(new_run(tmp_path, "b", "gpu-standalone", {**ENVIRONMENT, "hostname": "gpu-head"}))
    write(cpu_cluster, "cpu", samples=(10.0, 10.0), price=Price("m7i.4xlarge", 0.8064, 8, "d", "s"))
    write(gpu_cluster, "cpu", samples=(100.0, 100.0), price=Price("m7i.xlarge", 0.2016, 4, "d", "s"))
    write(gpu_cluster, "gpu", role="gpu", samples=(4.0, 4.0), gpu_metrics={"available": True, "util_mean_pct": 90.0},
          price=Price("g6.2xlarge", 0.9776, 4, "d", "s"))
    (case,) = results.cases([results.load(cpu_cluster), results.load(gpu_cluster)])
    assert [e.label for e in case.engines] == ["cpu (cpu-head)", "cpu (gpu-head)", "gpu"]
    assert case.verdict.compared_with == "cpu (cpu-head)"  # cheapest: 8 x $0.8064/h x 10 s < 4 x $0.2016/h x 100 s
    assert case.verdict.break_even == pytest.approx(4 * 0.9776 / (8 * 0.8064))  # 0.61x: clusters, not one node each
    assert case.verdict.speedup == pytest.approx(10 / 4) and case.verdict.verdict == "share"


def test_an_interrupted_run_says_so_and_lists_what_never_finished(tmp_path):
    run_dir = new_run(tmp_path)  # run.json still says running: the run was killed
    write(run_dir, "cpu")
    write(run_dir, "comet", role="cpu-native", status="running", samples=())
    run = results.load(run_dir)
    assert run.interrupted and [r.engine for r in run.unfinished] == ["comet"]
    assert any("never recorded its end" in m for m in run.missing)
    text = report.summary(run_dir)
    assert "RUN INCOMPLETE: it never recorded its end (killed, or still running); benchmarks that never finished: " \
           "w/comet/1e6" in text
    assert "w/comet/1e6: running" in report.problems(run_dir)


def test_the_latest_run_is_one_with_records(tmp_path):
    with_records = finished(new_run(tmp_path))
    write(with_records, "cpu")
    finished(new_run(tmp_path))  # newer, but empty
    assert results.latest_run(tmp_path / "runs") == with_records
