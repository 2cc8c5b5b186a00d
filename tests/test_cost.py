"""Cost per row, break-even and the verdict over any number of engines, on cases computed by hand."""

import pytest

from harness import cost
from harness.config import ConfigError

CPU_PRICE, GPU_PRICE = 0.2, 0.8  # break-even 4x on one node each
DEFAULT = cost.Thresholds()


def option(label, *samples, role=None, status="ok", busy=None, reason=None, price=None, nodes=1, fallback=None,
           agrees=None, source="executed plan"):
    role = role or ("gpu" if label.startswith("gpu") else "cpu-native" if label == "comet" else "cpu")
    price = price if price is not None else (GPU_PRICE if role == "gpu" else CPU_PRICE)
    return cost.Option(label, role, status, reason, samples, 1_000_000, nodes * price, f"{role}.instance", nodes,
                       None, busy, "kernel-busy time", fallback, source, agrees)


def test_cost_per_million_rows_sums_the_nodes_price_over_the_wall_time():
    assert cost.per_million_rows(2, 0.8, 36.0, 1_000_000) == pytest.approx(2 * 0.8 * 36 / 3600)  # $0.016
    assert cost.per_million_rows(1, 0.2016, 0.5, 10_000_000) == pytest.approx(0.2016 * 0.5 / 3600 / 10)


@pytest.mark.parametrize("args", [(1, 0.8, 1.0, 0), (1, None, 1.0, 100), (1, 0.8, None, 100), (1, 0.8, 1.0, None)])
def test_cost_is_unknown_without_rows_a_price_or_a_time(args):
    assert cost.per_million_rows(*args) is None


def test_the_shipped_prices_price_every_role_of_every_host_profile():
    from harness.config import available, merge
    for host in available("hosts"):
        conf = {k: s.value for k, s in merge("cpu", host).items()}
        for role in ("cpu", "cpu-native", "gpu"):
            price = cost.pricing(conf, role)
            assert price["usd_per_hour"] > 0 and price["date"] and price["source"], (host, role)
    local = {k: s.value for k, s in merge("cpu", "local").items()}
    assert cost.pricing(local, "gpu")["usd_per_hour"] / cost.pricing(local, "cpu")["usd_per_hour"] == pytest.approx(0.8048 / 0.2016)
    assert cost.pricing(local, "cpu-native")["instance"] == cost.pricing(local, "cpu")["instance"]


def test_a_price_can_be_overridden_and_a_missing_one_is_named():
    conf = {"prepbench.cost.cpu_instance": "m7i.xlarge", "prepbench.cost.gpu_instance": "my.gpu.box",
            "prepbench.price.m7i.xlarge": "0.5"}
    cpu = cost.pricing(conf, "cpu")
    assert cpu["usd_per_hour"] == 0.5 and "configuration" in cpu["source"]
    gpu = cost.pricing(conf, "gpu")
    assert "no price for 'my.gpu.box'" in gpu["missing"] and "--conf prepbench.price.my.gpu.box=" in gpu["missing"]
    with pytest.raises(ConfigError, match="nodes must be 1 or more"):
        cost.pricing({**conf, "prepbench.cost.nodes": "0"}, "cpu")


def test_a_fast_busy_gpu_run_shares_the_accelerators():
    v = cost.decide([option("cpu", 10, 10, 10), option("gpu", 2, 2, 2, busy=80, fallback=0.0)], DEFAULT)
    assert (v.verdict, v.engine, v.speedup, v.break_even, v.within_noise) == ("share", "gpu", 5.0, 4.0, False)
    assert v.reasons[0].startswith("gpu is 5.00x faster than cpu, at or above the break-even 4.00x")


def test_the_gpu_is_weighed_against_the_cheapest_cpu_engine_not_plain_spark():
    """5x plain Spark's speed would pay; 2x Comet's does not: keep prep on the CPUs, on Comet."""
    v = cost.decide([option("cpu", 10, 10), option("comet", 4, 4), option("gpu", 2, 2, busy=90, fallback=0.0)], DEFAULT)
    assert (v.verdict, v.engine, v.compared_with, v.speedup) == ("keep-on-cpu", "comet", "comet", 2.0)
    assert "on CPUs comet is cheapest: 2.50x cpu's speed" in v.reasons[1]


def test_an_engine_whose_output_differs_is_not_an_option():
    v = cost.decide([option("cpu", 10, 10), option("comet", 1, 1, agrees=False), option("gpu", 2, 2, busy=90)], DEFAULT)
    assert v.compared_with == "cpu" and v.verdict == "share"
    assert "comet's output differs from the reference's: it is not an option" in v.reasons
    wrong_gpu = cost.decide([option("cpu", 10, 10), option("gpu", 1, 1, busy=90, agrees=False)], DEFAULT)
    assert wrong_gpu.verdict == "keep-on-cpu" and "the GPU run under gpu gave a different output" in wrong_gpu.reasons


def test_clusters_of_different_shapes_break_even_at_the_ratio_of_their_prices():
    """8 CPU nodes at $0.2/h against 4 GPU nodes at $0.8/h: break-even 2x, not 4x."""
    v = cost.decide([option("cpu", 10, 10, nodes=8), option("gpu", 4, 4, busy=90, nodes=4)], DEFAULT)
    assert v.break_even == pytest.approx(2.0) and v.speedup == 2.5 and v.verdict == "share"
    assert "4 x gpu.instance $0.8/h against 8 x cpu.instance $0.2/h" in v.reasons[0]


def test_a_speedup_below_break_even_keeps_prep_on_cpu_nodes():
    v = cost.decide([option("cpu", 10, 10, 10), option("gpu", 4, 4, 4, busy=90)], DEFAULT)
    assert (v.verdict, v.engine, v.speedup) == ("keep-on-cpu", "cpu", 2.5)
    assert "below the break-even 4.00x" in v.reasons[0]


def test_a_difference_within_the_spread_of_repeats_is_noise_not_a_win():
    v = cost.decide([option("cpu", 1.0, 1.2, 1.4), option("gpu", 0.9, 1.1, 1.3, busy=90, price=0.2)], DEFAULT)
    assert v.speedup == pytest.approx(1.2 / 1.1) and v.within_noise
    assert v.verdict == "keep-on-cpu" and "noise, not a difference" in v.reasons[0]


def test_a_starved_gpu_keeps_prep_on_cpu_nodes_even_when_faster():
    v = cost.decide([option("cpu", 10, 10), option("gpu", 1, 1, busy=20)], DEFAULT)
    assert v.verdict == "keep-on-cpu" and any("starved" in r for r in v.reasons)


def test_a_plan_that_mostly_falls_back_keeps_prep_on_cpu_nodes():
    v = cost.decide([option("cpu", 10, 10), option("gpu", 1, 1, busy=90, fallback=0.5)], DEFAULT)
    assert v.verdict == "keep-on-cpu"
    assert "50% of the executed plan's operators fall back to the CPU (above the 20% limit)" in v.reasons


def test_a_failed_gpu_run_keeps_prep_on_cpu_nodes_with_its_reason():
    v = cost.decide([option("cpu", 10), option("gpu", status="failed", reason="OOM on the GPU")], DEFAULT)
    assert v.verdict == "keep-on-cpu" and "the GPU run under gpu failed: OOM on the GPU" in v.reasons


def test_without_a_gpu_run_the_verdict_says_what_the_gpu_must_beat():
    options = [option("cpu", 10, 10), option("comet", 5, 5), option("gpu", status="skipped", reason="no GPU", fallback=0.0)]
    v = cost.decide(options, DEFAULT)
    assert (v.verdict, v.engine, v.break_even) == ("undecided", "comet", 4.0)
    assert any("at least 4.00x faster than comet's 5.000 s (at most 1.250 s)" in r for r in v.reasons)
    predicted = cost.decide([option("cpu", 10), option("gpu", status="skipped", fallback=0.67, source="predicted plan")],
                            DEFAULT)
    assert predicted.verdict == "keep-on-cpu"


def test_a_missing_price_leaves_the_verdict_undecided_and_says_which():
    unpriced = cost.Option("gpu", "gpu", "ok", None, (2.0,), 1_000_000, None, "x", 1, "no price for 'x'", 90)
    v = cost.decide([option("cpu", 10), unpriced], DEFAULT)
    assert v.verdict == "undecided" and v.speedup == 5.0 and "no price for 'x'" in v.reasons


def test_without_a_cpu_result_there_is_nothing_to_compare():
    assert cost.decide([option("gpu", 1)], DEFAULT).verdict == "undecided"
    v = cost.decide([option("cpu", status="failed", reason="x"), option("gpu", 1)], DEFAULT)
    assert v.verdict == "undecided" and "cpu failed: x" in v.reasons[0]


def test_idle_paid_for_gpus_make_even_a_slower_speedup_worth_sharing():
    idle = cost.Thresholds(idle_gpu_fraction=0.5)
    v = cost.decide([option("cpu", 10, 10), option("gpu", 5, 5, busy=70, fallback=0.0)], idle)
    assert (v.verdict, v.engine, v.speedup) == ("share", "gpu", 2.0)
    assert v.reasons[0].startswith("GPU nodes are already paid for and idle 50% of the time")


def test_thresholds_come_from_the_configuration_and_are_checked():
    t = cost.Thresholds.from_conf({"prepbench.verdict.min_gpu_utilization_pct": "30"})
    assert t == cost.Thresholds(min_gpu_utilization_pct=30.0)
    with pytest.raises(ConfigError, match="fraction from 0 to 1"):
        cost.Thresholds.from_conf({"prepbench.verdict.idle_gpu_fraction": "50"})
