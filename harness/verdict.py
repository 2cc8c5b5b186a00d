"""The verdict of one case: should its prep share the accelerators, and if not, which CPU engine should run it?

Every verdict says what it rests on (``basis``):

* **measured**: a GPU engine ran the case here (or on a host paired with ``compare``). Its speedup over the
  cheapest CPU engine whose output agreed must reach the break-even speedup (the GPU cluster's price per
  hour over that CPU cluster's) outside the spread of repeats, with the GPU busy and most of its plan on it.
  A failed or wrong GPU run keeps prep on the CPUs.
* **predicted**: no GPU ran, but NVIDIA's QualX predicted the GPU's speedup over CPU Spark from this run's
  event log. The predicted GPU time is CPU Spark's measured median over that speedup, priced as the host
  profile's GPU instance; it must beat break-even against the cheapest CPU engine, with the real plugin's
  predicted plan coverage within the fallback limit. A measured GPU run always decides over a prediction.
* **undecided**: nothing to weigh (no CPU result, no price, no GPU run and no prediction).

Everything here is arithmetic on the case's engines as ``analysis`` built them (each an ``EngineResult``
holding its record), so the tests compute it by hand; no figure is copied out of a record.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .cost import Thresholds

SHARE, KEEP, UNDECIDED = "share", "keep-on-cpu", "undecided"
MEASURED, PREDICTED = "measured", "predicted"
CPU_ROLES = ("cpu", "cpu-native")
NOT_MEASURED = ("skipped", "running", "interrupted", "undefined")


@dataclass(frozen=True)
class Speedup:
    """How much faster one engine ran than another (the slower one's median over the faster one's), and
    whether the difference is noise: True when their [min, max] ranges of repeats overlap, None when either
    has fewer than two repeats (noise unknown: reported, never taken as a win or a loss by itself)."""

    value: float
    noise: bool | None = None

    def pays(self, threshold: float) -> bool:
        return self.value >= threshold and self.noise is not True

    def judgement(self, threshold: float | None) -> str:
        """win (at or above the threshold, outside the noise), loss, or noise: what the site draws."""
        if self.noise is True:
            return "noise"
        return "win" if self.pays(threshold or 1.0) else "loss"

    @property
    def note(self) -> str:
        return {True: " (within the spread of repeats: noise, not a difference)",
                None: " (noise unknown: fewer than two repeats)", False: ""}[self.noise]


@dataclass(frozen=True)
class Prediction:
    """QualX's prediction for the reference engine's queries of one case (None speedup: not predicted, why)."""

    speedup: float | None
    reason: str | None = None  # why there is no prediction
    queries: int = 0
    cpu_s: float | None = None  # the queries' duration, as QualX read it from the event log
    gpu_s: float | None = None  # their predicted GPU duration
    unsupported_pct: float | None = None  # QualX's unsupported-operator share of the application's stage time
    source: str = "QualX"
    gpu_price: object = None  # results.Price of the GPU instance the prediction is priced as


@dataclass(frozen=True)
class Verdict:
    verdict: str  # share, keep-on-cpu or undecided
    basis: str | None  # measured, predicted, or None when undecided
    engine: str | None  # the engine to use: the GPU engine to share, or the cheapest CPU engine
    reasons: list[str]
    speedup: Speedup | None = None  # of the GPU (measured or predicted) over the cheapest CPU engine that agreed
    break_even: float | None = None  # GPU cluster price per hour / CPU cluster price per hour
    compared_with: str | None = None  # the cheapest CPU engine that agreed

    @property
    def label(self) -> str:
        """The verdict as shown everywhere: "share (predicted)", "keep-on-cpu (measured)", "undecided"."""
        return f"{self.verdict} ({self.basis})" if self.basis and self.verdict != UNDECIDED else self.verdict


def usable(e) -> bool:
    """An engine result that can be weighed: it finished with samples and its output did not differ."""
    return e.record.ok and e.agrees is not False


def cheapest_cpu(engines: list):
    """The cheapest CPU engine (plain Spark, CPU-native, pandas, Dask) whose output agreed, by cost where every
    one is priced, else by time; None if none finished."""
    cpus = [e for e in engines if e.role in CPU_ROLES and usable(e)]
    if not cpus:
        return None
    priced = all(e.record.cost_per_mrows_usd is not None for e in cpus)
    return min(cpus, key=lambda e: (e.record.cost_per_mrows_usd if priced else e.record.median_s,
                                    CPU_ROLES.index(e.role)))


def decide(engines: list, thresholds: Thresholds, reference=None, coverage: dict | None = None,
           prediction: Prediction | None = None, use_measured: bool = True) -> Verdict:
    """The case's verdict from its engines (``analysis.EngineResult``), its reference engine (CPU Spark, whose
    time QualX's prediction divides), the plugin's predicted plan coverage and QualX's prediction. With
    `use_measured` False the GPU runs are ignored: the verdict the prediction alone would have given."""
    cpus = [e for e in engines if e.role in CPU_ROLES]
    best = cheapest_cpu(engines)
    if best is None:
        why = "; ".join(f"{e.label} {e.record.status}" + (f": {e.record.reason}" if e.record.reason else "") for e in cpus)
        return Verdict(UNDECIDED, None, None, [f"no CPU result to compare with ({why or 'no CPU engine ran'})"])
    reasons = _cpu_reasons(best, cpus)
    gpus = [e for e in engines if e.role == "gpu"]
    measured = [e for e in gpus if usable(e)] if use_measured else []
    failed = [e for e in gpus if e.record.status not in NOT_MEASURED and not usable(e)] if use_measured else []
    planned, plan_source = _fallback(gpus, coverage)
    if measured:
        return _measured(best, measured, planned, plan_source, thresholds, reasons)
    if failed:
        if planned is not None:
            reasons.append(_fallback_reason(planned, plan_source, thresholds))
        reasons += [f"the GPU run under {e.label} " + ("gave a different output" if e.record.ok else e.record.status)
                    + (f": {e.record.reason}" if e.record.reason else "") for e in failed]
        return Verdict(KEEP, MEASURED, best.label, reasons, compared_with=best.label)
    return _unmeasured(best, gpus, reference, planned, plan_source, prediction, thresholds, reasons)


def _measured(best, candidates: list, planned, plan_source, thresholds: Thresholds, reasons: list[str]) -> Verdict:
    gpu = min(candidates, key=lambda e: (e.record.cost_per_mrows_usd if e.record.cost_per_mrows_usd is not None
                                         else math.inf, e.record.median_s))
    speedup = gpu.speedups[best.label]
    executed = gpu.record.fallback_fraction
    fraction, source = (executed, "executed plan") if executed is not None else (planned, plan_source)
    too_much = fraction is not None and fraction > thresholds.max_fallback_fraction
    if fraction is not None:
        reasons.append(_fallback_reason(fraction, source, thresholds))
    busy, busy_source = gpu.record.gpu_busy_pct
    starved = busy is not None and busy < thresholds.min_gpu_utilization_pct
    if busy is None:
        reasons.append("GPU activity was not measured (no NVML on this host)")
    else:
        reasons.append(f"GPU busy {busy:.0f}% of the run by {busy_source} ({'below' if starved else 'at or above'} "
                       f"{thresholds.min_gpu_utilization_pct:.0f}%{': a starved GPU is paid for and idle' if starved else ''})")
    even = break_even(gpu.record.price, best.record.price)
    if thresholds.idle_gpu_fraction > 0:  # GPUs already paid for: prep uses idle capacity, nodes cost nothing extra
        reasons.insert(0, f"GPU nodes are already paid for and idle {thresholds.idle_gpu_fraction:.0%} of the time: prep "
                       f"there costs only the idle capacity it uses ({gpu.record.median_s:.3f} s of a GPU node per run, "
                       f"{speedup.value:.2f}x {best.label}'s speed{speedup.note}); while training is busy it displaces "
                       "training at the GPU node's price instead")
        return Verdict(KEEP if too_much else SHARE, MEASURED, best.label if too_much else gpu.label, reasons, speedup,
                       even, best.label)
    if even is None:
        return Verdict(UNDECIDED, None, best.label, [f"{gpu.label} is {speedup.value:.2f}x {best.label}'s speed"
                                                     f"{speedup.note}", _no_price(gpu, best)] + reasons, speedup, None,
                       best.label)
    pays = speedup.pays(even)
    reasons.insert(0, f"{gpu.label} is {speedup.value:.2f}x faster than {best.label}{speedup.note}, "
                   f"{'at or above' if pays else 'below'} the break-even {even:.2f}x ({priced_as(gpu.record.price)} "
                   f"against {priced_as(best.record.price)})")
    share = pays and not starved and not too_much
    return Verdict(SHARE if share else KEEP, MEASURED, gpu.label if share else best.label, reasons, speedup, even,
                   best.label)


def _unmeasured(best, gpus: list, reference, planned, plan_source, prediction: Prediction | None,
                thresholds: Thresholds, reasons: list[str]) -> Verdict:
    """No GPU run: decide from QualX's prediction where there is one, else say what the GPU must beat."""
    too_much = planned is not None and planned > thresholds.max_fallback_fraction
    if planned is not None:
        reasons.append(_fallback_reason(planned, plan_source, thresholds))
    gpu = gpus[0] if gpus else None
    if gpu is not None:
        reasons.append(f"no GPU run ({gpu.label} {gpu.record.status}" + (f": {gpu.record.reason})" if gpu.record.reason else ")"))
    gpu_price = gpu.record.price if gpu is not None and gpu.record.price.usd_per_hour is not None else \
        (prediction.gpu_price if prediction else None)
    even = break_even(gpu_price, best.record.price) if gpu_price is not None else None
    gpu_label = gpu.label if gpu is not None else "the GPU"
    if prediction is not None and prediction.speedup and reference is not None and reference.record.ok and even:
        gpu_s = reference.record.median_s / prediction.speedup
        speedup = Speedup(best.record.median_s / gpu_s)
        pays = speedup.pays(even)
        reasons.insert(0, f"{prediction.source} predicts {reference.label} {prediction.speedup:.2f}x faster on a GPU, "
                       f"so {gpu_s:.3f} s on {priced_as(gpu_price)}: {speedup.value:.2f}x {best.label}'s speed, "
                       f"{'at or above' if pays else 'below'} the break-even {even:.2f}x (predicted: no GPU ran)")
        reasons.append("GPU activity cannot be predicted: measure it on a GPU host")
        share = pays and not too_much
        return Verdict(SHARE if share else KEEP, PREDICTED, gpu_label if share else best.label, reasons, speedup, even,
                       best.label)
    if prediction is not None and not prediction.speedup:
        reasons.append(f"{prediction.source}: not predicted: {prediction.reason}")
    if not gpus and prediction is None:
        reasons.append("no GPU engine in this run and no prediction")
    if even is None:
        reasons.append(_no_price(gpu, best) if gpu is not None else "no GPU price to weigh against")
    else:
        reasons.append(f"on {priced_as(gpu_price)} a GPU run must be at least {even:.2f}x faster than {best.label}'s "
                       f"{best.record.median_s:.3f} s (at most {best.record.median_s / even:.3f} s) to cost less")
    if too_much:  # most of the plan would stay on the CPU: the plugin's own answer, without running it
        return Verdict(KEEP, PREDICTED, best.label, reasons, break_even=even, compared_with=best.label)
    return Verdict(UNDECIDED, None, best.label, reasons, break_even=even, compared_with=best.label)


def _fallback(gpus: list, coverage: dict | None) -> tuple[float | None, str]:
    """The share of a GPU plan off the GPU, from a GPU run's executed plan, else the plugin's predicted plan."""
    for e in gpus:
        if e.record.fallback_fraction is not None:
            return e.record.fallback_fraction, "executed plan"
    if coverage and coverage.get("fraction") is not None:
        return 1 - coverage["fraction"], "predicted plan"
    return None, "plan"


def _cpu_reasons(best, cpus: list) -> list[str]:
    """Which CPU engine is cheapest, by how much, and which CPU engines could not be compared."""
    reasons = []
    for other in cpus:
        if other is best or other.record.status == "undefined":
            continue
        if other.record.ok and other.agrees is False:
            reasons.append(f"{other.label}'s output differs from the reference's: it is not an option")
        elif other.record.ok:
            speedup = best.speedups.get(other.label)
            note = {True: ", within the spread of repeats", None: ", noise unknown", False: ""}[speedup.noise if speedup else None]
            reasons.append(f"on CPUs {best.label} is cheapest: {other.record.median_s / best.record.median_s:.2f}x "
                           f"{other.label}'s speed{note}")
        else:
            reasons.append(f"{other.label} {other.record.status}" + (f": {other.record.reason}" if other.record.reason else ""))
    return reasons


def _fallback_reason(fraction: float, source: str, thresholds: Thresholds) -> str:
    above = fraction > thresholds.max_fallback_fraction
    return (f"{fraction:.0%} of the {source}'s operators fall back to the CPU "
            f"({'above' if above else 'within'} the {thresholds.max_fallback_fraction:.0%} limit)")


def break_even(gpu_price, cpu_price) -> float | None:
    """The GPU cluster's price per hour over the CPU cluster's: each run's own nodes and instance."""
    if gpu_price is None or gpu_price.cluster_usd_per_hour is None or not cpu_price.cluster_usd_per_hour:
        return None
    return gpu_price.cluster_usd_per_hour / cpu_price.cluster_usd_per_hour


def priced_as(price) -> str:
    return f"{price.nodes} x {price.instance}" + (f" ${price.usd_per_hour:g}/h" if price.usd_per_hour is not None else "")


def _no_price(gpu, cpu) -> str:
    return "; ".join(dict.fromkeys(e.record.price.missing for e in (gpu, cpu) if e.record.price.missing)) or "a price is missing"
