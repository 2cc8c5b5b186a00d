"""Cost per row, prices and the verdict's thresholds, computed by hand."""

import pytest

from harness import cost
from harness.config import ConfigError


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


def test_thresholds_come_from_the_configuration_and_are_checked():
    t = cost.Thresholds.from_conf({"prepbench.verdict.min_gpu_utilization_pct": "30"})
    assert t == cost.Thresholds(min_gpu_utilization_pct=30.0)
    with pytest.raises(ConfigError, match="fraction from 0 to 1"):
        cost.Thresholds.from_conf({"prepbench.verdict.idle_gpu_fraction": "50"})
