"""Cost per row and the verdict's thresholds: plain arithmetic on prices, times and rows.

* Cost per million rows = nodes x price per hour x wall seconds / 3600 / rows x 1e6, per engine: CPU and
  CPU-native engines are priced as the host profile's ``prepbench.cost.cpu_instance``, GPU engines as its
  ``gpu_instance``, each times the profile's ``prepbench.cost.nodes``. Runs of a case may come from different
  host profiles (a CPU cluster of one shape, a GPU cluster of another): each keeps its own nodes and price.
* The verdict (``verdict.py``) weighs a GPU's speedup against break-even (the GPU cluster's price per hour over
  the CPU cluster's), how busy the GPU was, the fraction of the plan that falls back to the CPU, and GPUs that
  are already paid for and partly idle. Its thresholds are ``prepbench.verdict.*`` keys (``Thresholds``).

Prices live in one table, ``conf/prices.conf``, each with its date and source; ``prepbench.price.<instance>``
overrides one. Everything here is plain arithmetic on plain values, so the tests compute it by hand.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import CONF_DIR
from .config import SUITE_PREFIX, ConfigError

PRICES_FILE = CONF_DIR / "prices.conf"


def read_prices(path=PRICES_FILE) -> dict[str, dict]:
    """instance -> {usd_per_hour, date, source}, from the `instance usd_per_hour date source...` table."""
    prices = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split(None, 3)
        try:
            instance, usd, date, source = fields
            prices[instance] = {"usd_per_hour": float(usd), "date": date, "source": source.strip()}
        except ValueError:
            raise ConfigError(f"{path.name}:{number}: write `instance usd_per_hour date source`, got '{line.strip()}'") from None
    return prices


def pricing(conf: dict[str, str], role: str, prices_path=PRICES_FILE) -> dict:
    """What one engine's runs are priced as: the host profile's node count and the instance its role runs on
    (CPU and CPU-native engines the CPU instance, GPU engines the GPU instance), with the price's date and
    source. `conf` is key -> value (the merged configuration). A missing instance or price is stated, not guessed."""
    table = read_prices(prices_path)
    raw = conf.get(f"{SUITE_PREFIX}cost.nodes", "1")
    try:
        nodes = int(raw)
    except ValueError:
        raise ConfigError(f"{SUITE_PREFIX}cost.nodes must be a whole number of nodes, got '{raw}'") from None
    if nodes < 1:
        raise ConfigError(f"{SUITE_PREFIX}cost.nodes must be 1 or more, got {nodes}")
    kind = "gpu" if role == "gpu" else "cpu"
    instance = conf.get(f"{SUITE_PREFIX}cost.{kind}_instance")
    override = conf.get(f"{SUITE_PREFIX}price.{instance}") if instance else None
    if not instance:
        return {"nodes": nodes, "instance": None, "missing": f"the host profile names no {SUITE_PREFIX}cost.{kind}_instance"}
    if override is not None:
        return {"nodes": nodes, "instance": instance, "usd_per_hour": float(override), "date": "as configured",
                "source": f"{SUITE_PREFIX}price.{instance} in the configuration"}
    if instance in table:
        return {"nodes": nodes, "instance": instance, **table[instance]}
    return {"nodes": nodes, "instance": instance, "missing": f"no price for '{instance}' in conf/prices.conf: add a "
            f"line or pass --conf {SUITE_PREFIX}price.{instance}=<usd per hour>"}


def per_million_rows(nodes: int, usd_per_hour: float | None, seconds: float | None, rows: int | None) -> float | None:
    """USD per million rows, or None when the time, the price or the rows are unknown (or zero rows)."""
    if usd_per_hour is None or seconds is None or not rows:
        return None
    return nodes * usd_per_hour * seconds / 3600 / rows * 1e6


@dataclass(frozen=True)
class Thresholds:
    min_gpu_utilization_pct: float = 50.0
    max_fallback_fraction: float = 0.2
    idle_gpu_fraction: float = 0.0

    @classmethod
    def from_conf(cls, conf: dict[str, str]) -> "Thresholds":
        prefix = f"{SUITE_PREFIX}verdict."
        found = cls(**{name: float(conf[prefix + name]) for name in cls.__dataclass_fields__ if prefix + name in conf})
        for name in ("max_fallback_fraction", "idle_gpu_fraction"):
            if not 0 <= getattr(found, name) <= 1:
                raise ConfigError(f"{prefix}{name} is a fraction from 0 to 1, got {getattr(found, name)}")
        return found
