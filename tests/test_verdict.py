"""The verdict over any number of engines, measured and predicted, on cases computed by hand: each engine is a
record as a trial writes it, weighed by ``verdict.decide`` through the analysis's speedups."""

import pytest

from harness import analysis, verdict
from harness.cost import Thresholds
from harness.results import Price, Record, RunInfo
from harness.verdict import Prediction

CPU_PRICE, GPU_PRICE = 0.2, 0.8  # break-even 4x on one node each
DEFAULT = Thresholds()
RUN = RunInfo("run", "/nonexistent")


def engine(label, *samples, role=None, status="ok", busy=None, reason=None, price=None, nodes=1, fallback=None,
           agrees=None, missing=None, backend="spark"):
    role = role or ("gpu" if label.startswith("gpu") else "cpu-native" if label == "comet" else "cpu")
    usd = price if price is not None else (GPU_PRICE if role == "gpu" else CPU_PRICE)
    plan = {}
    if fallback is not None:  # an executed plan with that share of its operators off the accelerator
        off = round(fallback * 100)
        plan = {"source": "executed plan", "accelerator": "RAPIDS Accelerator", "accelerated": ["GpuX"] * (100 - off),
                "other": ["X"] * off}
    record = Record(engine=label, workload="w", scale="1e6", status=status, role=role, backend=backend, reason=reason,
                    samples_s=list(samples), rows=1_000_000, plan=plan,
                    price=Price(f"{role}.instance", None if missing else usd, nodes, "d", "s", missing),
                    gpu_metrics={"available": True, "util_mean_pct": busy} if busy is not None else {})
    return analysis.EngineResult(label, record, RUN, agrees=agrees)


def decide(*engines, thresholds=DEFAULT, coverage=None, prediction=None):
    """As the analysis does: every engine's speedup over every CPU engine that finished, then the verdict."""
    cpus = [e for e in engines if e.role in verdict.CPU_ROLES and e.record.ok]
    for e in engines:
        for cpu in cpus:
            if e.record.ok and e is not cpu:
                e.speedups[cpu.label] = analysis.speedup(cpu.record, e.record)
    reference = analysis.reference_of(list(engines)) or next((e for e in engines if e.label == "cpu"), None)
    return verdict.decide(list(engines), thresholds, reference, coverage, prediction)


def test_a_fast_busy_gpu_run_shares_the_accelerators():
    v = decide(engine("cpu", 10, 10, 10), engine("gpu", 2, 2, 2, busy=80, fallback=0.0))
    assert (v.verdict, v.basis, v.engine, v.speedup.value, v.break_even, v.speedup.noise) == \
        ("share", "measured", "gpu", 5.0, 4.0, False)
    assert v.label == "share (measured)"
    assert v.reasons[0].startswith("gpu is 5.00x faster than cpu, at or above the break-even 4.00x")


def test_the_gpu_is_weighed_against_the_cheapest_cpu_engine_not_plain_spark():
    """5x plain Spark's speed would pay; 2x Comet's does not: keep prep on the CPUs, on Comet."""
    v = decide(engine("cpu", 10, 10), engine("comet", 4, 4), engine("gpu", 2, 2, busy=90, fallback=0.0))
    assert (v.verdict, v.engine, v.compared_with, v.speedup.value) == ("keep-on-cpu", "comet", "comet", 2.0)
    assert "on CPUs comet is cheapest: 2.50x cpu's speed" in v.reasons[1]


def test_an_engine_whose_output_differs_is_not_an_option():
    v = decide(engine("cpu", 10, 10), engine("comet", 1, 1, agrees=False), engine("gpu", 2, 2, busy=90))
    assert v.compared_with == "cpu" and v.verdict == "share"
    assert "comet's output differs from the reference's: it is not an option" in v.reasons
    wrong_gpu = decide(engine("cpu", 10, 10), engine("gpu", 1, 1, busy=90, agrees=False))
    assert wrong_gpu.label == "keep-on-cpu (measured)" and "the GPU run under gpu gave a different output" in wrong_gpu.reasons


def test_clusters_of_different_shapes_break_even_at_the_ratio_of_their_prices():
    """8 CPU nodes at $0.2/h against 4 GPU nodes at $0.8/h: break-even 2x, not 4x."""
    v = decide(engine("cpu", 10, 10, nodes=8), engine("gpu", 4, 4, busy=90, nodes=4))
    assert v.break_even == pytest.approx(2.0) and v.speedup.value == 2.5 and v.verdict == "share"
    assert "4 x gpu.instance $0.8/h against 8 x cpu.instance $0.2/h" in v.reasons[0]


def test_a_speedup_below_break_even_keeps_prep_on_cpu_nodes():
    v = decide(engine("cpu", 10, 10, 10), engine("gpu", 4, 4, 4, busy=90))
    assert (v.verdict, v.engine, v.speedup.value) == ("keep-on-cpu", "cpu", 2.5)
    assert "below the break-even 4.00x" in v.reasons[0]


def test_a_difference_within_the_spread_of_repeats_is_noise_not_a_win():
    v = decide(engine("cpu", 1.0, 1.2, 1.4), engine("gpu", 0.9, 1.1, 1.3, busy=90, price=0.2))
    assert v.speedup.value == pytest.approx(1.2 / 1.1) and v.speedup.noise
    assert v.verdict == "keep-on-cpu" and "noise, not a difference" in v.reasons[0]


def test_a_starved_gpu_keeps_prep_on_cpu_nodes_even_when_faster():
    v = decide(engine("cpu", 10, 10), engine("gpu", 1, 1, busy=20))
    assert v.verdict == "keep-on-cpu" and any("starved" in r for r in v.reasons)


def test_a_plan_that_mostly_falls_back_keeps_prep_on_cpu_nodes():
    v = decide(engine("cpu", 10, 10), engine("gpu", 1, 1, busy=90, fallback=0.5))
    assert v.verdict == "keep-on-cpu"
    assert "50% of the executed plan's operators fall back to the CPU (above the 20% limit)" in v.reasons


def test_a_failed_gpu_run_keeps_prep_on_cpu_nodes_with_its_reason():
    v = decide(engine("cpu", 10), engine("gpu", status="failed", reason="OOM on the GPU"))
    assert v.verdict == "keep-on-cpu" and "the GPU run under gpu failed: OOM on the GPU" in v.reasons


def test_without_a_gpu_run_or_a_prediction_the_verdict_says_what_the_gpu_must_beat():
    v = decide(engine("cpu", 10, 10), engine("comet", 5, 5), engine("gpu", status="skipped", reason="no GPU"),
               coverage={"fraction": 1.0})
    assert (v.verdict, v.basis, v.engine, v.break_even) == ("undecided", None, "comet", 4.0)
    assert any("at least 4.00x faster than comet's 5.000 s (at most 1.250 s)" in r for r in v.reasons)
    planned = decide(engine("cpu", 10), engine("gpu", status="skipped"), coverage={"fraction": 0.33})
    assert planned.label == "keep-on-cpu (predicted)"  # the plugin's own plan keeps most of it on the CPU


def test_a_missing_price_leaves_the_verdict_undecided_and_says_which():
    v = decide(engine("cpu", 10), engine("gpu", 2.0, busy=90, missing="no price for 'x'"))
    assert v.verdict == "undecided" and v.speedup.value == 5.0 and "no price for 'x'" in v.reasons


def test_without_a_cpu_result_there_is_nothing_to_compare():
    assert decide(engine("gpu", 1)).verdict == "undecided"
    v = decide(engine("cpu", status="failed", reason="x"), engine("gpu", 1))
    assert v.verdict == "undecided" and "cpu failed: x" in v.reasons[0]


def test_idle_paid_for_gpus_make_even_a_slower_speedup_worth_sharing():
    v = decide(engine("cpu", 10, 10), engine("gpu", 5, 5, busy=70, fallback=0.0),
               thresholds=Thresholds(idle_gpu_fraction=0.5))
    assert (v.verdict, v.engine, v.speedup.value) == ("share", "gpu", 2.0)
    assert v.reasons[0].startswith("GPU nodes are already paid for and idle 50% of the time")


# ---------------------------------------------------------------------------------------------- predicted


QUALX = "QualX (spark-rapids-user-tools 26.8.4, onprem model)"


def test_a_prediction_above_break_even_shares_predicted():
    """QualX predicts 6x over CPU Spark's 10 s: 1.667 s on the GPU, 6x, above the 4x break-even."""
    v = decide(engine("cpu", 10, 10), engine("gpu", status="skipped", reason="no GPU"),
               coverage={"fraction": 0.9}, prediction=Prediction(6.0, source=QUALX))
    assert (v.label, v.engine, v.speedup.value, v.break_even) == ("share (predicted)", "gpu", pytest.approx(6.0), 4.0)
    assert v.reasons[0].startswith(f"{QUALX} predicts cpu 6.00x faster on a GPU, so 1.667 s on 1 x gpu.instance")
    assert "GPU activity cannot be predicted: measure it on a GPU host" in v.reasons


def test_a_prediction_is_weighed_against_the_cheapest_cpu_engine():
    """6x CPU Spark is only 3x Comet: below break-even, keep on Comet (predicted)."""
    v = decide(engine("cpu", 10, 10), engine("comet", 5, 5), engine("gpu", status="skipped"),
               prediction=Prediction(6.0, source=QUALX))
    assert (v.label, v.engine, v.compared_with) == ("keep-on-cpu (predicted)", "comet", "comet")
    assert v.speedup.value == pytest.approx(3.0)


def test_a_predicted_win_with_most_of_the_plan_off_the_gpu_keeps_prep_on_cpus():
    v = decide(engine("cpu", 10), engine("gpu", status="skipped"), coverage={"fraction": 0.5},
               prediction=Prediction(9.0, source=QUALX))
    assert v.label == "keep-on-cpu (predicted)" and any("above the 20% limit" in r for r in v.reasons)


def test_no_prediction_is_never_a_prediction_of_one():
    """QualX's fall-back of 1.0 when its model fails is recorded as not predicted: the verdict stays undecided."""
    failed = Prediction(None, "Failed to execute the prediction model", source=QUALX)
    v = decide(engine("cpu", 10), engine("gpu", status="skipped"), coverage={"fraction": 1.0}, prediction=failed)
    assert v.label == "undecided" and v.speedup is None
    assert f"{QUALX}: not predicted: Failed to execute the prediction model" in v.reasons


def test_a_measured_gpu_run_always_decides_over_a_prediction():
    v = decide(engine("cpu", 10, 10), engine("gpu", 5, 5, busy=90), prediction=Prediction(9.0, source=QUALX))
    assert v.label == "keep-on-cpu (measured)" and v.speedup.value == 2.0
    shadow = verdict.decide([e for e in []], DEFAULT)  # no engines: nothing to weigh
    assert shadow.verdict == "undecided"


def test_the_prediction_is_priced_as_the_gpu_instance_when_no_gpu_engine_is_in_the_run():
    v = decide(engine("cpu", 10, 10), prediction=Prediction(6.0, source=QUALX, gpu_price=Price("g6.xlarge", 0.8, 1)))
    assert v.label == "share (predicted)" and v.break_even == pytest.approx(4.0) and v.engine == "the GPU"
