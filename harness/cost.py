"""Cost per row, break-even, and the verdict: should a workload's prep share the accelerators, and if not,
which CPU engine should run it?

* Cost per million rows = nodes x price per hour x wall seconds / 3600 / rows x 1e6, per engine: CPU and
  CPU-native engines are priced as the host profile's ``prepbench.cost.cpu_instance``, GPU engines as its
  ``gpu_instance``, each times the profile's ``prepbench.cost.nodes``. Runs of a case may come from different
  host profiles (a CPU cluster of one shape, a GPU cluster of another): each keeps its own nodes and price.
* Break-even speedup = the GPU cluster's price per hour / the CPU cluster's, against the cheapest CPU option
  whose output agreed: the GPU run must be at least that much faster to cost less.
* The verdict weighs the measured speedup against break-even (a difference within the spread of repeats is
  noise, not a win), how busy the GPU was (a starved GPU is paid for and idle), the fraction of the plan
  that falls back to the CPU, and GPUs that are already paid for and partly idle (then prep costs only the
  idle capacity it uses). Thresholds are ``prepbench.verdict.*`` keys, stated in every verdict.

Prices live in one table, ``conf/prices.conf``, each with its date and source; ``prepbench.price.<instance>``
overrides one. Everything here is plain arithmetic on plain values, so the tests compute it by hand.
"""

from __future__ import annotations

import math
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


CPU_ROLES = ("cpu", "cpu-native")
NOT_MEASURED = ("skipped", "running", "interrupted", "undefined")


@dataclass(frozen=True)
class Option:
    """One engine's run of a case, as the verdict weighs it."""

    label: str
    role: str  # cpu, cpu-native or gpu
    status: str
    reason: str | None = None
    samples: tuple[float, ...] = ()
    rows: int | None = None
    cluster_usd_per_hour: float | None = None  # nodes x the instance's price
    instance: str | None = None
    nodes: int = 1
    price_missing: str | None = None
    busy_pct: float | None = None
    busy_source: str = "not measured"
    fallback_fraction: float | None = None
    fallback_source: str = "plan"
    agrees: bool | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok" and bool(self.samples)

    @property
    def median(self) -> float | None:
        return statistics.median(self.samples) if self.samples else None

    @property
    def cost(self) -> float | None:
        return per_million_rows(1, self.cluster_usd_per_hour, self.median, self.rows)

    @property
    def priced_as(self) -> str:
        return f"{self.nodes} x {self.instance}" + (f" ${self.cluster_usd_per_hour / self.nodes:g}/h"
                                                   if self.cluster_usd_per_hour is not None else "")


@dataclass(frozen=True)
class Verdict:
    verdict: str  # share, keep-on-cpu or undecided
    engine: str | None  # the engine to use: the GPU engine to share, or the cheapest CPU engine
    reasons: list[str]
    speedup: float | None = None  # of the best GPU engine over the cheapest CPU engine that agreed
    within_noise: bool | None = None
    break_even: float | None = None  # GPU cluster price per hour / CPU cluster price per hour
    compared_with: str | None = None  # the cheapest CPU engine that agreed


def overlap(a: Option, b: Option) -> bool | None:
    """Whether two runs' [min, max] ranges of repeats overlap; unknown with fewer than two repeats each."""
    if len(a.samples) < 2 or len(b.samples) < 2:
        return None
    return min(a.samples) <= max(b.samples) and min(b.samples) <= max(a.samples)


def decide(options: list[Option], thresholds: Thresholds) -> Verdict:
    """Share the GPUs, keep prep on CPUs (and on which CPU engine), or undecided, with the reasons.

    The GPU is weighed against the cheapest CPU option whose output agreed (plain Spark or a CPU-native
    engine): its speedup over that option must reach the break-even speedup (the GPU cluster's price per
    hour over that CPU cluster's) outside the spread of repeats, with the GPU busy and most of its plan on it."""
    cpus = [o for o in options if o.role in CPU_ROLES]
    usable = [o for o in cpus if o.ok and o.agrees is not False]
    if not usable:
        why = "; ".join(f"{o.label} {o.status}" + (f": {o.reason}" if o.reason else "") for o in cpus)
        return Verdict(UNDECIDED, None, [f"no CPU result to compare with ({why or 'no CPU engine ran'})"])
    priced = all(o.cost is not None for o in usable)
    best = min(usable, key=lambda o: (o.cost if priced else o.median, CPU_ROLES.index(o.role)))
    reasons = _cpu_reasons(best, cpus)
    gpus = [o for o in options if o.role == "gpu"]
    candidates = [o for o in gpus if o.ok and o.agrees is not False]
    fallback = next((o.fallback_fraction for o in gpus if o.fallback_fraction is not None), None)
    source = next((o.fallback_source for o in gpus if o.fallback_fraction is not None), "plan")
    if not candidates:
        too_much = fallback is not None and fallback > thresholds.max_fallback_fraction
        if fallback is not None:
            reasons.append(_fallback_reason(fallback, source, thresholds))
        failed = [o for o in gpus if o.status not in NOT_MEASURED and not (o.ok and o.agrees is not False)]
        if failed:
            reasons += [f"the GPU run under {o.label} " + ("gave a different output" if o.ok else f"{o.status}")
                        + (f": {o.reason}" if o.reason else "") for o in failed]
            return Verdict(KEEP, best.label, reasons, compared_with=best.label)
        if not gpus:
            return Verdict(KEEP if too_much else UNDECIDED, best.label, reasons + ["no GPU engine in this run"],
                           compared_with=best.label)
        gpu = gpus[0]
        reasons.append(f"no GPU run ({gpu.label} {gpu.status}" + (f": {gpu.reason})" if gpu.reason else ")"))
        even = _break_even(gpu, best)
        if even is None:
            reasons.append(_no_price(gpu, best))
        else:
            reasons.append(f"on {gpu.priced_as} a GPU run must be at least {even:.2f}x faster than {best.label}'s "
                           f"{best.median:.3f} s (at most {best.median / even:.3f} s) to cost less")
        return Verdict(KEEP if too_much else UNDECIDED, best.label, reasons, break_even=even, compared_with=best.label)

    gpu = min(candidates, key=lambda o: (o.cost if o.cost is not None else math.inf, o.median))
    speedup = best.median / gpu.median
    noise = overlap(best, gpu)
    noted = {True: " (within the spread of repeats: noise, not a difference)", None: " (noise unknown: fewer than "
             "two repeats)", False: ""}[noise]
    fraction = gpu.fallback_fraction if gpu.fallback_fraction is not None else fallback
    too_much = fraction is not None and fraction > thresholds.max_fallback_fraction
    if fraction is not None:
        reasons.append(_fallback_reason(fraction, gpu.fallback_source if gpu.fallback_fraction is not None else source,
                                        thresholds))
    starved = gpu.busy_pct is not None and gpu.busy_pct < thresholds.min_gpu_utilization_pct
    if gpu.busy_pct is None:
        reasons.append("GPU activity was not measured (no NVML on this host)")
    else:
        reasons.append(f"GPU busy {gpu.busy_pct:.0f}% of the run by {gpu.busy_source} ({'below' if starved else 'at or above'} "
                       f"{thresholds.min_gpu_utilization_pct:.0f}%{': a starved GPU is paid for and idle' if starved else ''})")
    even = _break_even(gpu, best)
    if thresholds.idle_gpu_fraction > 0:  # GPUs already paid for: prep uses idle capacity, nodes cost nothing extra
        reasons.insert(0, f"GPU nodes are already paid for and idle {thresholds.idle_gpu_fraction:.0%} of the time: prep "
                       f"there costs only the idle capacity it uses ({gpu.median:.3f} s of a GPU node per run, "
                       f"{speedup:.2f}x {best.label}'s speed{noted}); while training is busy it displaces training at "
                       "the GPU node's price instead")
        verdict = KEEP if too_much else SHARE
        return Verdict(verdict, best.label if too_much else gpu.label, reasons, speedup, noise, even, best.label)
    if even is None:
        return Verdict(UNDECIDED, best.label, [f"{gpu.label} is {speedup:.2f}x {best.label}'s speed{noted}",
                                               _no_price(gpu, best)] + reasons, speedup, noise, None, best.label)
    pays = speedup >= even and noise is not True
    reasons.insert(0, f"{gpu.label} is {speedup:.2f}x faster than {best.label}{noted}, {'at or above' if pays else 'below'} "
                   f"the break-even {even:.2f}x ({gpu.priced_as} against {best.priced_as})")
    share = pays and not starved and not too_much
    return Verdict(SHARE if share else KEEP, gpu.label if share else best.label, reasons, speedup, noise, even, best.label)


def _cpu_reasons(best: Option, cpus: list[Option]) -> list[str]:
    """Which CPU engine is cheapest, by how much, and which CPU engines could not be compared."""
    reasons = []
    for other in cpus:
        if other is best or other.status == "undefined":
            continue
        if other.ok and other.agrees is False:
            reasons.append(f"{other.label}'s output differs from the reference's: it is not an option")
        elif other.ok:
            noise = overlap(best, other)
            note = {True: ", within the spread of repeats", None: ", noise unknown", False: ""}[noise]
            reasons.append(f"on CPUs {best.label} is cheapest: {other.median / best.median:.2f}x {other.label}'s speed{note}")
        else:
            reasons.append(f"{other.label} {other.status}" + (f": {other.reason}" if other.reason else ""))
    return reasons


def _fallback_reason(fraction: float, source: str, thresholds: Thresholds) -> str:
    above = fraction > thresholds.max_fallback_fraction
    return (f"{fraction:.0%} of the {source}'s operators fall back to the CPU "
            f"({'above' if above else 'within'} the {thresholds.max_fallback_fraction:.0%} limit)")


def _break_even(gpu: Option, cpu: Option) -> float | None:
    """The GPU cluster's price per hour over the CPU cluster's: each run's own nodes and instance."""
    if gpu.cluster_usd_per_hour is None or not cpu.cluster_usd_per_hour:
        return None
    return gpu.cluster_usd_per_hour / cpu.cluster_usd_per_hour


def _no_price(gpu: Option, cpu: Option) -> str:
    return "; ".join(dict.fromkeys(o.price_missing for o in (gpu, cpu) if o.price_missing)) or "a price is missing"
