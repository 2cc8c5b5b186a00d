"""Cost per row, break-even, and the verdict: should a workload's prep share the accelerators?

* Cost per million rows = nodes x price per hour x wall seconds / 3600 / rows x 1e6, per engine: CPU runs are
  priced as the host profile's ``prepbench.cost.cpu_instance``, plugin runs as its ``gpu_instance``.
* Break-even speedup = GPU node price / CPU node price: on dedicated nodes the GPU run must be at least that
  much faster to cost less.
* The verdict weighs the measured speedup against break-even (a difference within the spread of repeats is
  noise, not a win), GPU utilization during the run (a starved GPU is paid for and idle), the fraction of
  the plan that falls back to the CPU, and GPUs that are already paid for and partly idle (then prep costs
  only the idle capacity it uses). Thresholds are ``prepbench.verdict.*`` keys, stated in every verdict.

Prices live in one table, ``conf/prices.conf``, each with its date and source; ``prepbench.price.<instance>``
overrides one. Everything here is plain arithmetic on plain values, so the tests compute it by hand.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from . import CONF_DIR
from .config import SUITE_PREFIX, ConfigError

PRICES_FILE = CONF_DIR / "prices.conf"
SHARE, KEEP, UNDECIDED = "share", "keep-on-cpu", "undecided"


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


def pricing(conf: dict[str, str], prices_path=PRICES_FILE) -> dict:
    """What this configuration's runs are priced as: node count, and the CPU and GPU instance with its price.

    `conf` is key -> value (the merged configuration). A missing instance or price is stated, not guessed."""
    table = read_prices(prices_path)
    nodes = int(conf.get(f"{SUITE_PREFIX}cost.nodes", "1"))
    if nodes < 1:
        raise ConfigError(f"{SUITE_PREFIX}cost.nodes must be 1 or more, got {nodes}")
    found = {"nodes": nodes}
    for role in ("cpu", "gpu"):
        instance = conf.get(f"{SUITE_PREFIX}cost.{role}_instance")
        override = conf.get(f"{SUITE_PREFIX}price.{instance}") if instance else None
        if not instance:
            found[role] = {"instance": None, "missing": f"the host profile names no {SUITE_PREFIX}cost.{role}_instance"}
        elif override is not None:
            found[role] = {"instance": instance, "usd_per_hour": float(override), "date": "as configured",
                           "source": f"{SUITE_PREFIX}price.{instance} in the configuration"}
        elif instance in table:
            found[role] = {"instance": instance, **table[instance]}
        else:
            found[role] = {"instance": instance, "missing": f"no price for '{instance}' in conf/prices.conf: add a line "
                           f"or pass --conf {SUITE_PREFIX}price.{instance}=<usd per hour>"}
    return found


def per_million_rows(nodes: int, usd_per_hour: float | None, seconds: float | None, rows: int | None) -> float | None:
    """USD per million rows, or None when the time, the price or the rows are unknown (or zero rows)."""
    if usd_per_hour is None or seconds is None or not rows:
        return None
    return nodes * usd_per_hour * seconds / 3600 / rows * 1e6


def break_even(prices: dict) -> float | None:
    """GPU node price / CPU node price (same node count on both sides), or None without both prices."""
    cpu, gpu = prices["cpu"].get("usd_per_hour"), prices["gpu"].get("usd_per_hour")
    return gpu / cpu if cpu and gpu is not None else None


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


@dataclass(frozen=True)
class Side:
    """One engine's run of one workload at one scale, as the verdict needs it."""

    engine: str
    status: str
    reason: str | None = None
    samples: tuple[float, ...] = ()
    rows: int | None = None
    util_mean_pct: float | None = None

    @classmethod
    def of(cls, record: dict) -> "Side":
        gpu = record.get("gpu_metrics") or {}
        return cls(record["engine"], record.get("status", "?"), record.get("reason"), tuple(record.get("samples_s") or ()),
                   record.get("rows"), gpu.get("util_mean_pct") if gpu.get("available") else None)

    @property
    def ok(self) -> bool:
        return self.status == "ok" and bool(self.samples)

    @property
    def median(self) -> float | None:
        return statistics.median(self.samples) if self.samples else None


@dataclass(frozen=True)
class Verdict:
    verdict: str
    reasons: list[str]
    speedup: float | None = None
    within_noise: bool | None = None
    break_even: float | None = None


def decide(cpu: Side | None, gpu: Side | None, prices: dict, thresholds: Thresholds,
           fallback_fraction: float | None = None, fallback_source: str = "plan") -> Verdict:
    """Share the accelerators, keep prep on CPU nodes, or undecided (not enough measured), with reasons."""
    even = break_even(prices)
    if cpu is None or not cpu.ok:
        why = f"{cpu.status}: {cpu.reason}" if cpu else "no CPU run"
        return Verdict(UNDECIDED, [f"no CPU result to compare with ({why})"], break_even=even)
    reasons = []
    too_much_fallback = fallback_fraction is not None and fallback_fraction > thresholds.max_fallback_fraction
    if fallback_fraction is not None:
        reasons.append(f"{fallback_fraction:.0%} of the {fallback_source}'s operators fall back to the CPU "
                       f"({'above' if too_much_fallback else 'within'} the {thresholds.max_fallback_fraction:.0%} limit)")
    if gpu is None or gpu.status in ("skipped", "running") or (gpu.status == "ok" and not gpu.samples):
        why = gpu.status if gpu else "none recorded"
        if even is None:
            return Verdict(KEEP if too_much_fallback else UNDECIDED, reasons + [f"no GPU run ({why})", _no_price(prices)])
        needed = (f"on {prices['gpu']['instance']} a GPU run must be at least {even:.2f}x faster than the CPU's "
                  f"{cpu.median:.3f} s (at most {cpu.median / even:.3f} s) to cost less")
        return Verdict(KEEP if too_much_fallback else UNDECIDED, reasons + [f"no GPU run ({why})", needed], break_even=even)
    if not gpu.ok:
        return Verdict(KEEP, reasons + [f"the GPU run {gpu.status}: {gpu.reason}"], break_even=even)

    speedup = cpu.median / gpu.median
    noise = max(cpu.samples) >= min(gpu.samples) and max(gpu.samples) >= min(cpu.samples)  # ranges overlap
    noted = " (within the spread of repeats: noise, not a difference)" if noise else ""
    starved = gpu.util_mean_pct is not None and gpu.util_mean_pct < thresholds.min_gpu_utilization_pct
    if gpu.util_mean_pct is None:
        reasons.append("GPU utilization was not measured (no NVML on this host)")
    else:
        reasons.append(f"GPU busy {gpu.util_mean_pct:.0f}% of the run ({'below' if starved else 'at or above'} "
                       f"{thresholds.min_gpu_utilization_pct:.0f}%{': a starved GPU is paid for and idle' if starved else ''})")

    if thresholds.idle_gpu_fraction > 0:  # GPUs already paid for: prep uses idle capacity, nodes cost nothing extra
        reasons.insert(0, f"GPU nodes are already paid for and idle {thresholds.idle_gpu_fraction:.0%} of the time: prep "
                       f"there costs only the idle capacity it uses ({gpu.median:.3f} s of a GPU node per run, "
                       f"speedup {speedup:.2f}x{noted}); while training is busy it displaces training at the GPU "
                       "node's price instead")
        return Verdict(KEEP if too_much_fallback else SHARE, reasons, speedup, noise, even)
    if even is None:
        return Verdict(UNDECIDED, [f"speedup {speedup:.2f}x{noted}", _no_price(prices)] + reasons, speedup, noise)
    pays = speedup >= even and not noise
    reasons.insert(0, f"speedup {speedup:.2f}x{noted} is {'at or above' if pays else 'below'} the break-even "
                   f"{even:.2f}x ({prices['gpu']['instance']} ${prices['gpu']['usd_per_hour']}/h vs "
                   f"{prices['cpu']['instance']} ${prices['cpu']['usd_per_hour']}/h)")
    verdict = SHARE if pays and not starved and not too_much_fallback else KEEP
    return Verdict(verdict, reasons, speedup, noise, even)


def _no_price(prices: dict) -> str:
    return "; ".join(dict.fromkeys(p["missing"] for p in (prices["cpu"], prices["gpu"]) if "missing" in p))
