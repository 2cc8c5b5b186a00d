"""The typed result model: records read once and checked, cases of any number of engines chosen by role, cases
that pair runs of two hosts, and runs that did not finish. Records here are written by the real writer
(``Record.save`` and ``records.new_run``), never by hand."""

import json

import pytest

from harness import analysis, records, report, results
from harness.config import RunSettings
from harness.fingerprint import Tolerance
from harness.results import Price, Record

FINGERPRINT = {"version": 3, "rows": 100, "exact_columns": ["k"], "hash_lo": 5, "hash_hi": 7,
               "floats": {"x": {"kind": "float", "count": 100, "missing": 0, "posinf": 0, "neginf": 0,
                                "sum": 50.0, "sum_abs": 50.0, "sum_sq": 40.0, "weighted": 49.0}}}
PRICES = {"cpu": Price("m7i.xlarge", 0.2, 1, "d", "s"), "cpu-native": Price("m7i.xlarge", 0.2, 1, "d", "s"),
          "gpu": Price("g6.xlarge", 0.8, 1, "d", "s")}
ENVIRONMENT = {"hostname": "box", "cores": 2, "cpu": "test CPU", "gpus": [], "commit": "abc", "spark": "4.1.3"}


def new_run(tmp_path, name="runs", host="local", environment=None):
    settings = RunSettings(host=host, engines=("cpu",), scales=("1e4",), results_dir=tmp_path / name)
    return records.new_run(settings, environment_=environment or ENVIRONMENT)


def write(run_dir, engine, role="cpu", samples=(1.0, 1.1), status="ok", scale="1e6", workload="w", fingerprint=None,
          price=None, rows=1_000_000, **fields):
    record = Record(engine=engine, workload=workload, scale=scale, status=status, role=role, family="shuffle",
                    samples_s=list(samples), rows=rows, fingerprint=fingerprint or FINGERPRINT,
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
    text = report.summary_of(run_dir)
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


def test_an_interrupted_run_says_so_and_lists_what_never_finished(tmp_path):
    run_dir = new_run(tmp_path)  # run.json still says running: the run was killed
    write(run_dir, "cpu")
    write(run_dir, "comet", role="cpu-native", status="running", samples=())
    run = results.load(run_dir)
    assert run.interrupted and [r.engine for r in run.unfinished] == ["comet"]
    assert any("never recorded its end" in m for m in run.missing)
    text = report.summary_of(run_dir)
    assert "RUN INCOMPLETE: it never recorded its end (killed, or still running); benchmarks that never finished: " \
           "w/comet/1e6" in text
    assert "w/comet/1e6: running" in report.problems(analysis.analyze_dirs([run_dir]))


def test_the_latest_run_is_one_with_records(tmp_path):
    with_records = finished(new_run(tmp_path))
    write(with_records, "cpu")
    finished(new_run(tmp_path))  # newer, but empty
    assert results.latest_run(tmp_path / "runs") == with_records


def test_the_summary_of_several_runs_merges_their_scales_into_one_scaling_table(tmp_path, capsys):
    """Runs of workload subsets or scales (a 1e7 run beside a 1e5 and 1e6 one) are summarized together."""
    from harness import cli

    small, large = finished(new_run(tmp_path)), finished(new_run(tmp_path))
    for run_dir, scale, rows, seconds in ((small, "1e5", 100_000, 0.1), (large, "1e7", 10_000_000, 10.0)):
        write(run_dir, "cpu", scale=scale, rows=rows, samples=(seconds, seconds))
    assert cli.main(["summary", str(small), str(large)]) == 0
    text = capsys.readouterr().out
    header = next(line for line in text.splitlines() if line.strip().startswith("workload  engine"))
    assert header.split() == ["workload", "engine", "1e5", "1e7", "k", "crossovers"]
    assert cli.main(["summary", str(tmp_path / "nowhere")]) == 2 and "is not a run directory" in capsys.readouterr().err
