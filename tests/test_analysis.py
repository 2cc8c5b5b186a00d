"""The one analysis pass: cases of any number of engines chosen by role, agreement with the reference, speedups
and their noise, verdicts measured and predicted, the per-engine summary, the scaling view, and one document
(comparison.json) for bench, compare and the site. Records are written by the real writer, never by hand; a
hand-made GPU record stands in for a measurement here only, never in a results file."""

import json
import re

import pytest

from harness import analysis, bench, dashboard, records, report, results
from harness.results import Price, Record

from test_results import ENVIRONMENT, FINGERPRINT, finished, new_run, write

TINY = "1e4"


def analyzed(*run_dirs):
    return analysis.analyze_dirs(run_dirs)


def test_scales_are_matched_exactly_not_by_prefix(tmp_path):
    """Scale 100000 is not 1000000: the old glob `{scale}*` compared them."""
    run_dir = finished(new_run(tmp_path))
    write(run_dir, "cpu", scale="100000")
    write(run_dir, "comet", role="cpu-native", scale="1000000", fingerprint={**FINGERPRINT, "hash_lo": 6})
    found = analysis.cases([results.load(run_dir)])
    assert [(c.scale, [e.label for e in c.engines]) for c in found] == [("100000", ["cpu"]), ("1000000", ["comet"])]
    assert all(c.outputs_agree is None for c in found)


def test_engines_are_chosen_by_role_and_each_keeps_its_own_figures(tmp_path):
    """With cpu, gpu and gpu-rapids-shuffle, the old site showed one GPU engine's speedup beside the other's time."""
    run_dir = finished(new_run(tmp_path))
    write(run_dir, "cpu", samples=(10.0, 10.2))
    write(run_dir, "gpu", role="gpu", samples=(2.0, 2.1), gpu_metrics={"available": True, "util_mean_pct": 80.0})
    write(run_dir, "gpu-rapids-shuffle", role="gpu", samples=(1.0, 1.1), gpu_metrics={"available": True, "util_mean_pct": 85.0})
    found = analyzed(run_dir)
    (case,) = found.cases
    by = {e.label: e for e in case.engines}
    assert [e.label for e in case.engines] == ["cpu", "gpu", "gpu-rapids-shuffle"]
    assert case.verdict.engine == "gpu-rapids-shuffle" and case.verdict.speedup.value == pytest.approx(10.1 / 1.05)
    assert by["gpu"].speedups["cpu"].value == pytest.approx(10.1 / 2.05) and by["gpu"].record.median_s == 2.05
    exported = {e["label"]: e for e in analysis.export(found)["cases"][0]["engines"]}
    assert exported["gpu"]["median_s"] == 2.05 and exported["gpu-rapids-shuffle"]["median_s"] == 1.05


def test_outputs_are_compared_with_the_cpu_spark_engine(tmp_path):
    run_dir = finished(new_run(tmp_path))
    write(run_dir, "cpu")
    write(run_dir, "comet", role="cpu-native")
    write(run_dir, "pandas", backend="pandas", fingerprint={**FINGERPRINT, "hash_hi": 8})
    found = analyzed(run_dir)
    (case,) = found.cases
    assert case.reference == "cpu" and case.outputs_agree is False
    assert {e.label: e.agrees for e in case.engines} == {"cpu": True, "pandas": False, "comet": True}
    assert any("row hashes differ" in p for p in case.engine("pandas").problems)
    assert any("pandas's output differs from cpu's" in p for p in report.problems(found))


def test_a_case_pairs_runs_of_two_hosts_each_priced_as_its_own_cluster(tmp_path):
    cpu_cluster = finished(new_run(tmp_path, "a", "standalone", {**ENVIRONMENT, "hostname": "cpu-head"}))
    gpu_cluster = finished(new_run(tmp_path, "b", "gpu-standalone", {**ENVIRONMENT, "hostname": "gpu-head"}))
    write(cpu_cluster, "cpu", samples=(10.0, 10.0), price=Price("m7i.4xlarge", 0.8064, 8, "d", "s"))
    write(gpu_cluster, "cpu", samples=(100.0, 100.0), price=Price("m7i.xlarge", 0.2016, 4, "d", "s"))
    write(gpu_cluster, "gpu", role="gpu", samples=(4.0, 4.0), gpu_metrics={"available": True, "util_mean_pct": 90.0},
          price=Price("g6.2xlarge", 0.9776, 4, "d", "s"))
    (case,) = analysis.cases([results.load(cpu_cluster), results.load(gpu_cluster)])
    assert [e.label for e in case.engines] == ["cpu (cpu-head)", "cpu (gpu-head)", "gpu"]
    assert case.verdict.compared_with == "cpu (cpu-head)"  # cheapest: 8 x $0.8064/h x 10 s < 4 x $0.2016/h x 100 s
    assert case.verdict.break_even == pytest.approx(4 * 0.9776 / (8 * 0.8064))  # 0.61x: clusters, not one node each
    assert case.verdict.speedup.value == pytest.approx(10 / 4) and case.verdict.label == "share (measured)"


def test_the_comparison_puts_every_engine_side_by_side_with_cost_and_verdict(tmp_path):
    run_dir = finished(new_run(tmp_path))
    for engine, role, samples, extra in (
            ("cpu", "cpu", [10.0, 10.5, 11.0], {}),
            ("comet", "cpu-native", [6.0, 6.2, 6.4], {}),
            ("gpu", "gpu", [1.0, 1.1, 1.2], {"gpu_metrics": {"available": True, "util_mean_pct": 85.0, "energy_per_mrows_j": 40.0},
                                              "plan": {"source": "executed plan", "accelerator": "RAPIDS Accelerator",
                                                       "accelerated": ["GpuHashAggregate"] * 9, "other": ["SortExec"]}})):
        price = Price("g6.xlarge", 0.8) if role == "gpu" else Price("m7i.xlarge", 0.2)
        Record(engine=engine, workload="groupby_sum_mean", scale=TINY, status="ok", role=role, samples_s=samples,
               rows=1_000_000, fingerprint=FINGERPRINT, price=price, **extra).save(run_dir)
    found = analyzed(run_dir)
    path = analysis.write_comparison(found, run_dir / results.COMPARISON_FILE)
    document = json.loads(path.read_text())
    (case,) = document["cases"]
    assert document["schema"] == analysis.ANALYSIS_SCHEMA
    assert (case["verdict_label"], case["verdict_engine"], case["compared_with"]) == ("share (measured)", "gpu", "comet")
    assert case["speedup"] == pytest.approx(6.2 / 1.1) and case["break_even_speedup"] == pytest.approx(4.0)
    assert case["within_noise"] is False and case["outputs_agree"] is True
    engines = {e["label"]: e for e in case["engines"]}
    assert engines["cpu"]["cost_per_mrows_usd"] == pytest.approx(0.2 * 10.5 / 3600)
    assert engines["gpu"]["speedups"] == {"cpu": pytest.approx(10.5 / 1.1), "comet": pytest.approx(6.2 / 1.1)}
    assert engines["gpu"]["fallback_fraction"] == pytest.approx(0.1) and engines["gpu"]["not_accelerated"] == ["SortExec"]
    text = report.summary(found)
    assert "share (measured)" in text and "comet" in text
    comet = next(s for s in found.engines if s.label == "comet")
    assert comet.time_ratio == pytest.approx(6.2 / 10.5) and comet.cheapest_in == 1


# ---------------------------------------------------------------------------------------------- one pass, one answer


def test_noise_is_judged_the_same_by_the_verdict_and_the_site(tmp_path):
    """One sample per engine: the noise is unknown. The verdict used to count the speedup as paying while the site
    drew it as noise; both now read one Speedup."""
    run_dir = finished(new_run(tmp_path))
    write(run_dir, "cpu", samples=(10.0,))
    write(run_dir, "gpu", role="gpu", samples=(1.0,), gpu_metrics={"available": True, "util_mean_pct": 90.0})
    found = analyzed(run_dir)
    (case,) = found.cases
    assert case.verdict.speedup.noise is None and case.verdict.label == "share (measured)"
    view = dashboard._case_view(0, case)
    assert view["judgement"] == case.verdict.speedup.judgement(case.verdict.break_even) == "win"
    assert "noise unknown" in " ".join(case.verdict.reasons)


def test_figures_come_from_the_records_themselves_not_a_copy(tmp_path):
    """The verdict reads each record's median, ok-ness and cost (cost.Option copied them field by field)."""
    run_dir = finished(new_run(tmp_path))
    write(run_dir, "cpu", samples=(8.0, 8.5, 9.0))
    write(run_dir, "gpu", role="gpu", samples=(1.0, 1.25, 1.5), gpu_metrics={"available": True, "util_mean_pct": 90.0})
    (case,) = analyzed(run_dir).cases
    cpu, gpu = case.engine("cpu").record, case.engine("gpu").record
    assert case.verdict.speedup.value == cpu.median_s / gpu.median_s
    assert case.engine("gpu").speedups["cpu"] is not None and not hasattr(__import__("harness.cost").cost, "Option")


def test_a_wrong_output_never_flags_the_reference_whichever_ran_first(tmp_path):
    """--engines comet,cpu: Comet ran first with a wrong output. The old trial check flagged CPU Spark, which then
    compared with Comet and marked itself mismatched; the reference is CPU Spark, so Comet is the one that differs."""
    run_dir = finished(new_run(tmp_path))
    write(run_dir, "comet", role="cpu-native", fingerprint={**FINGERPRINT, "hash_lo": 99})
    write(run_dir, "cpu")
    found = analyzed(run_dir)
    (case,) = found.cases
    assert case.reference == "cpu" and case.engine("cpu").agrees is True and case.engine("comet").agrees is False
    legacy = finished(new_run(tmp_path, "legacy"))  # a run where the old trial had marked CPU Spark itself
    write(legacy, "comet", role="cpu-native", fingerprint={**FINGERPRINT, "hash_lo": 99})
    write(legacy, "cpu", status="mismatch", reason="output differs from the comet engine's")
    (case,) = analyzed(legacy).cases
    assert case.reference == "cpu" and case.engine("cpu").agrees is True and case.engine("comet").agrees is False


def test_the_reference_runs_first_and_is_never_compared_against_others():
    from harness.config import RunSettings

    assert RunSettings(engines=("comet", "dask", "cpu")).engines == ("cpu", "dask", "comet")


def test_bench_the_site_and_compare_write_one_comparison_schema(tmp_path, monkeypatch):
    """Two comparison.json files of different shapes, each stamped with the record schema, are now one document."""
    run_dir = finished(new_run(tmp_path))
    write(run_dir, "cpu")
    loads = []
    real_load = results.load
    monkeypatch.setattr(results, "load", lambda d: loads.append(d) or real_load(d))
    assert bench.finish(run_dir, 0, progress=lambda m: None) == 0
    assert len(loads) == 1, "one load of the run for the comparison, the summary, the site and the problems"
    from_bench = json.loads((run_dir / results.COMPARISON_FILE).read_text())
    from_site = json.loads((run_dir / "site" / results.COMPARISON_FILE).read_text())
    assert from_bench["schema"] == from_site["schema"] == analysis.ANALYSIS_SCHEMA != results.SCHEMA
    assert set(from_bench) == set(from_site) and from_bench["cases"] == from_site["cases"]
    assert (run_dir / "summary.txt").read_text().startswith(f"run {run_dir}")


# ---------------------------------------------------------------------------------------------- predictions


def qualified(run_dir, predictions: dict, state="ok"):
    records.write_json(run_dir / results.QUALIFICATION_FILE, {
        "schema": 1, "state": state, "tools": {"package": "spark-rapids-user-tools", "version": "26.8.4", "model": "onprem"},
        "gpu_price": {"instance": "g6.xlarge", "usd_per_hour": 0.8, "nodes": 1}, "applications": [],
        "records": predictions})


def test_a_cpu_run_with_predictions_decides_every_case_marked_predicted(tmp_path):
    run_dir = finished(new_run(tmp_path))
    write(run_dir, "cpu", workload="fast", samples=(10.0, 10.0))
    write(run_dir, "cpu", workload="slow", samples=(10.0, 10.0))
    write(run_dir, "gpu", role="gpu", workload="fast", status="skipped", reason="no GPU", samples=())
    qualified(run_dir, {"fast.cpu.1e6.json": {"speedup": 8.0, "queries": 2},
                        "slow.cpu.1e6.json": {"speedup": 1.2, "queries": 1}})
    found = analyzed(run_dir)
    verdicts = {c.workload: c.verdict for c in found.cases}
    assert verdicts["fast"].label == "share (predicted)" and verdicts["slow"].label == "keep-on-cpu (predicted)"
    assert not found.gpu_measured
    text = report.summary(found)
    assert "no GPU ran here: its verdicts are predicted by QualX" in text
    assert "8.00x" in text and "share (predicted)" in text


def test_measured_and_predicted_side_by_side_with_the_predictions_error(tmp_path):
    """A CPU run with QualX's predictions paired with a GPU run (by compare): measured decides, the prediction's
    error and the verdict it alone would have given are shown beside it."""
    cpu_run = finished(new_run(tmp_path, "a", "local", {**ENVIRONMENT, "hostname": "cpubox"}))
    gpu_run = finished(new_run(tmp_path, "b", "gpu-local", {**ENVIRONMENT, "hostname": "gpubox"}))
    write(cpu_run, "cpu", workload="w1", samples=(10.0, 10.0))
    write(cpu_run, "cpu", workload="w2", samples=(10.0, 10.0))
    for name, t in (("w1", 2.0), ("w2", 5.0)):
        write(gpu_run, "gpu", role="gpu", workload=name, samples=(t, t), gpu_metrics={"available": True, "util_mean_pct": 90.0})
    qualified(cpu_run, {"w1.cpu.1e6.json": {"speedup": 4.0}, "w2.cpu.1e6.json": {"speedup": 6.0}})
    found = analysis.analyze(*analysis.load([], [_pairing(tmp_path, cpu_run, gpu_run)])[:2])
    by = {c.workload: c for c in found.cases}
    assert by["w1"].verdict.label == "share (measured)" and by["w1"].prediction_error == pytest.approx(4.0 / 5.0 - 1)
    assert by["w2"].verdict.label == "keep-on-cpu (measured)" and by["w2"].shadow.label == "share (predicted)"
    assert found.accuracy.median_abs_error == pytest.approx((0.2 + 2.0) / 2)  # 4 for 5x, 6 for 2x
    assert [c.workload for c in found.accuracy.wrong_verdicts] == ["w2"]
    assert "median absolute error 110% over 2 case(s)" in report.summary(found)


def _pairing(root, *runs):
    path = root / "comparisons" / "pair" / analysis.PAIRING_FILE
    records.write_json(path, {"runs": [str(r) for r in runs]})
    return path


# ---------------------------------------------------------------------------------------------- summaries


def test_the_engine_summary_gives_the_geometric_mean_and_lists_engines_that_cannot_run_once(tmp_path):
    run_dir = finished(new_run(tmp_path))
    for name, comet in (("a", 2.0), ("b", 8.0)):
        write(run_dir, "cpu", workload=name, samples=(4.0, 4.0))
        write(run_dir, "comet", role="cpu-native", workload=name, samples=(comet, comet))
        write(run_dir, "gpu", role="gpu", workload=name, status="skipped", reason="no GPU: NVML ...", samples=())
    found = analyzed(run_dir)
    comet = next(s for s in found.engines if s.label == "comet")
    assert comet.time_ratio == pytest.approx((0.5 * 2.0) ** 0.5) and comet.ratio_cases == 2 and comet.cheapest_in == 1
    gpu = next(s for s in found.engines if s.label == "gpu")
    assert gpu.unavailable == "no GPU: NVML ..." and gpu.ran == 0
    text = report.summary(found)
    assert text.count("no GPU: NVML") == 1 and "not run here: gpu (gpu)" in text


def test_scaling_names_the_crossover_and_fits_each_engines_growth(tmp_path):
    run_dir = finished(new_run(tmp_path))
    for scale, rows, cpu, pandas in (("1e5", 100_000, 1.0, 0.2), ("1e6", 1_000_000, 2.0, 2.0), ("1e7", 10_000_000, 10.0, 40.0)):
        for engine, t, backend in (("cpu", cpu, "spark"), ("pandas", pandas, "pandas")):
            write(run_dir, engine, workload="w", scale=scale, samples=(t * 0.99, t, t * 1.01), backend=backend, rows=rows)
    (view,) = analyzed(run_dir).scaling
    assert view.cheapest == {"1e5": "pandas", "1e6": "cpu", "1e7": "cpu"}
    (crossover,) = view.crossovers
    assert (crossover.below, crossover.at, crossover.before, crossover.after) == ("1e5", "1e6", "pandas", "cpu")
    assert crossover.within_noise is False and crossover.tied_at == ["1e6"]  # at 1e6 both took 2.0 s: a tie there
    exponents = {e.label: e.exponent for e in view.engines}
    assert exponents["pandas"] == pytest.approx(1.1505, abs=1e-3)  # (log 40 - log 0.2) / (log 1e7 - log 1e5)
    assert exponents["cpu"] == pytest.approx(0.5, abs=0.01)
    assert view.sentence == "pandas is cheapest up to 1e5, cpu from 1e6 (at 1e6 the two are within the spread of repeats)"
    title, header, cpu_row, pandas_row = report.scaling_table(analyzed(run_dir))  # the summary's one table
    split = lambda line: re.split(r"\s{2,}", line.strip())
    assert split(header) == ["workload", "engine", "1e5", "1e6", "1e7", "k", "crossovers"]
    assert split(cpu_row)[:2] == ["w", "cpu"] and split(cpu_row)[-1] == view.sentence
    assert split(pandas_row)[0] == "pandas"  # the workload and its crossovers are named once, on its first row
    stars = lambda cells: [cell.endswith("*") for cell in cells]
    assert stars(split(cpu_row)[2:5]) == [False, True, True] and stars(split(pandas_row)[1:4]) == [True, False, False]


def test_a_crossover_within_the_spread_at_both_scales_is_noise(tmp_path):
    run_dir = finished(new_run(tmp_path))
    for scale, rows, cpu, pandas in (("1e5", 100_000, 1.0, 0.995), ("1e6", 1_000_000, 2.0, 2.005)):
        for engine, t, backend in (("cpu", cpu, "spark"), ("pandas", pandas, "pandas")):
            write(run_dir, engine, workload="w", scale=scale, samples=(t * 0.99, t, t * 1.01), backend=backend, rows=rows)
    (crossover,) = analyzed(run_dir).scaling[0].crossovers
    assert crossover.within_noise is True and crossover.tied_at == ["1e5", "1e6"]
    assert crossover.text.endswith("(within the spread of repeats: noise, not a crossover)")


def test_a_crossover_outside_the_spread_is_a_crossover(tmp_path):
    run_dir = finished(new_run(tmp_path))
    for scale, rows, cpu, pandas in (("1e5", 100_000, 1.0, 0.2), ("1e6", 1_000_000, 2.0, 8.0)):
        for engine, t, backend in (("cpu", cpu, "spark"), ("pandas", pandas, "pandas")):
            write(run_dir, engine, workload="w", scale=scale, samples=(t * 0.99, t, t * 1.01), backend=backend, rows=rows)
    (view,) = analyzed(run_dir).scaling
    assert view.crossovers[0].within_noise is False
    assert view.sentence == "pandas is cheapest up to 1e5, cpu from 1e6"
