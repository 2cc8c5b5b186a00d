"""Cost per row, break-even and the verdict, on cases computed by hand."""

import pytest

from harness import cost
from harness.config import ConfigError

PRICES = {"nodes": 1, "cpu": {"instance": "m7i.xlarge", "usd_per_hour": 0.2, "date": "d", "source": "s"},
          "gpu": {"instance": "g6.xlarge", "usd_per_hour": 0.8, "date": "d", "source": "s"}}  # break-even 4x
DEFAULT = cost.Thresholds()


def side(engine, *samples, status="ok", util=None, reason=None):
    return cost.Side(engine, status, reason, samples, 1_000_000, util)


def test_cost_per_million_rows_sums_the_nodes_price_over_the_wall_time():
    assert cost.per_million_rows(2, 0.8, 36.0, 1_000_000) == pytest.approx(2 * 0.8 * 36 / 3600)  # $0.016
    assert cost.per_million_rows(1, 0.2016, 0.5, 10_000_000) == pytest.approx(0.2016 * 0.5 / 3600 / 10)


@pytest.mark.parametrize("args", [(1, 0.8, 1.0, 0), (1, None, 1.0, 100), (1, 0.8, None, 100), (1, 0.8, 1.0, None)])
def test_cost_is_unknown_without_rows_a_price_or_a_time(args):
    assert cost.per_million_rows(*args) is None


def test_break_even_is_the_gpu_node_price_over_the_cpu_node_price():
    assert cost.break_even(PRICES) == pytest.approx(4.0)
    assert cost.break_even({**PRICES, "gpu": {"instance": "x", "missing": "no price"}}) is None


def test_the_shipped_prices_give_a_break_even_for_every_host_profile():
    from harness.config import available, merge
    for host in available("hosts"):
        prices = cost.pricing({k: s.value for k, s in merge("cpu", host).items()})
        assert cost.break_even(prices) > 1, host
        assert all(prices[role]["date"] and prices[role]["source"] for role in ("cpu", "gpu"))
    local = cost.pricing({k: s.value for k, s in merge("cpu", "local").items()})
    assert cost.break_even(local) == pytest.approx(0.8048 / 0.2016)


def test_a_price_can_be_overridden_and_a_missing_one_is_named():
    conf = {"prepbench.cost.cpu_instance": "m7i.xlarge", "prepbench.cost.gpu_instance": "my.gpu.box",
            "prepbench.price.m7i.xlarge": "0.5"}
    prices = cost.pricing(conf)
    assert prices["cpu"]["usd_per_hour"] == 0.5 and "configuration" in prices["cpu"]["source"]
    assert "no price for 'my.gpu.box'" in prices["gpu"]["missing"]
    assert "--conf prepbench.price.my.gpu.box=" in prices["gpu"]["missing"]
    with pytest.raises(ConfigError, match="nodes must be 1 or more"):
        cost.pricing({**conf, "prepbench.cost.nodes": "0"})


def test_a_fast_busy_gpu_run_shares_the_accelerators():
    v = cost.decide(side("cpu", 10, 10, 10), side("gpu", 2, 2, 2, util=80), PRICES, DEFAULT, 0.0)
    assert (v.verdict, v.speedup, v.break_even, v.within_noise) == ("share", 5.0, 4.0, False)
    assert v.reasons[0].startswith("speedup 5.00x is at or above the break-even 4.00x")


def test_a_speedup_below_break_even_keeps_prep_on_cpu_nodes():
    v = cost.decide(side("cpu", 10, 10, 10), side("gpu", 4, 4, 4, util=90), PRICES, DEFAULT)
    assert v.verdict == "keep-on-cpu" and v.speedup == 2.5
    assert "below the break-even 4.00x (g6.xlarge $0.8/h vs m7i.xlarge $0.2/h)" in v.reasons[0]


def test_a_difference_within_the_spread_of_repeats_is_noise_not_a_win():
    even = {**PRICES, "gpu": {**PRICES["gpu"], "usd_per_hour": 0.2}}  # break-even 1x
    v = cost.decide(side("cpu", 1.0, 1.2, 1.4), side("gpu", 0.9, 1.1, 1.3, util=90), even, DEFAULT)
    assert v.speedup == pytest.approx(1.2 / 1.1) and v.within_noise
    assert v.verdict == "keep-on-cpu" and "noise, not a difference" in v.reasons[0]


def test_a_starved_gpu_keeps_prep_on_cpu_nodes_even_when_faster():
    v = cost.decide(side("cpu", 10, 10), side("gpu", 1, 1, util=20), PRICES, DEFAULT)
    assert v.verdict == "keep-on-cpu" and any("starved" in r for r in v.reasons)


def test_a_plan_that_mostly_falls_back_keeps_prep_on_cpu_nodes():
    v = cost.decide(side("cpu", 10, 10), side("gpu", 1, 1, util=90), PRICES, DEFAULT, 0.5, "executed plan")
    assert v.verdict == "keep-on-cpu"
    assert "50% of the executed plan's operators fall back to the CPU (above the 20% limit)" in v.reasons


def test_a_failed_gpu_run_keeps_prep_on_cpu_nodes_with_its_reason():
    v = cost.decide(side("cpu", 10), side("gpu", status="failed", reason="OOM on the GPU"), PRICES, DEFAULT)
    assert v.verdict == "keep-on-cpu" and "the GPU run failed: OOM on the GPU" in v.reasons


def test_without_a_gpu_run_the_verdict_says_what_the_gpu_must_beat():
    v = cost.decide(side("cpu", 10, 10), side("gpu", status="skipped", reason="no GPU"), PRICES, DEFAULT, 0.0)
    assert v.verdict == "undecided" and v.break_even == 4.0
    assert any("at least 4.00x faster than the CPU's 10.000 s (at most 2.500 s)" in r for r in v.reasons)
    predicted_fallback = cost.decide(side("cpu", 10), None, PRICES, DEFAULT, 0.67, "predicted plan")
    assert predicted_fallback.verdict == "keep-on-cpu"


def test_a_missing_price_leaves_the_verdict_undecided_and_says_which():
    unpriced = {**PRICES, "gpu": {"instance": "x", "missing": "no price for 'x'"}}
    v = cost.decide(side("cpu", 10), side("gpu", 2, util=90), unpriced, DEFAULT)
    assert v.verdict == "undecided" and v.speedup == 5.0 and "no price for 'x'" in v.reasons


def test_without_a_cpu_result_there_is_nothing_to_compare():
    assert cost.decide(None, side("gpu", 1), PRICES, DEFAULT).verdict == "undecided"
    assert cost.decide(side("cpu", status="failed", reason="x"), side("gpu", 1), PRICES, DEFAULT).verdict == "undecided"


def test_idle_paid_for_gpus_make_even_a_slower_speedup_worth_sharing():
    idle = cost.Thresholds(idle_gpu_fraction=0.5)
    v = cost.decide(side("cpu", 10, 10), side("gpu", 5, 5, util=70), PRICES, idle, 0.0)
    assert v.verdict == "share" and v.speedup == 2.0
    assert v.reasons[0].startswith("GPU nodes are already paid for and idle 50% of the time")


def test_thresholds_come_from_the_configuration_and_are_checked():
    t = cost.Thresholds.from_conf({"prepbench.verdict.min_gpu_utilization_pct": "30"})
    assert t == cost.Thresholds(min_gpu_utilization_pct=30.0)
    with pytest.raises(ConfigError, match="fraction from 0 to 1"):
        cost.Thresholds.from_conf({"prepbench.verdict.idle_gpu_fraction": "50"})
