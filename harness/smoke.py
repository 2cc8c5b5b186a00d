"""The first seconds on a new host: does each accelerated engine really run a query accelerated?

Before a long run on a GPU host, one small aggregation goes to every Spark engine with an accelerator (the
RAPIDS Accelerator, Comet) that can run here; it must return the right sums with its aggregate run by
the accelerator, and for a GPU engine NVML must answer. The first failure stops the run at
once with Spark's, the plugin's or CUDA's own error, so that a broken host costs seconds, not the run.
"""

from __future__ import annotations

import time
import uuid

from . import HarnessError, coverage, gpu, jars
from .backends import Engine
from .config import RunSettings
from .fatbin import MANIFEST as PRUNED_MANIFEST
from .rest import MonitorError

ROWS = 1_000_000
KEYS = 97


def check(settings: RunSettings, addresses: dict, progress=print) -> list[str]:
    """Check every accelerated engine with a running service; returns what was checked, in words."""
    checked = []
    for name in settings.engines:
        engine = Engine.of(name, settings)
        accelerator = coverage.accelerator_of(engine.conf)
        if engine.backend != "spark" or accelerator is None:
            continue
        if name not in addresses:
            progress(f"smoke: {name} cannot run here (its benchmarks will say why): not checked")
            continue
        began = time.perf_counter()
        if engine.role == "gpu":
            _, why = gpu.probe()
            if why:
                raise HarnessError(f"smoke: the {name} engine's server started but NVML does not answer: {why}")
        try:
            accelerated = _aggregate_accelerated(engine, settings, addresses[name])
        except HarnessError:
            raise
        except Exception as err:  # Spark's, the plugin's or CUDA's own error, first line first
            raise HarnessError(f"smoke: a small aggregation failed on {name}: {str(err).strip()}"
                               + _pruning_hint(engine)) from None
        line = f"smoke: {name} ran its aggregate on the {accelerator[0]} ({', '.join(accelerated)}) in " \
               f"{time.perf_counter() - began:.1f} s"
        progress(line)
        checked.append(line)
    return checked


def _aggregate_accelerated(engine, settings: RunSettings, address: dict) -> list[str]:
    """The accelerated operators of a small aggregation on the engine's server, checked for the right sums."""
    run = engine.backend_module.open(engine, engine.backend_module.preflight(engine), settings, address)
    try:
        return _check_on(run, engine)
    finally:
        run.close()  # while its server still answers


def _check_on(run, engine) -> list[str]:
    spark = run.spark
    tag = f"prepbench-smoke-{uuid.uuid4().hex[:8]}"
    spark.addTag(tag)
    try:
        rows = spark.range(0, ROWS, 1, 4).selectExpr(f"id % {KEYS} AS k", "id").groupBy("k").sum("id").collect()
    finally:
        spark.removeTag(tag)
    expected = {k: sum(range(k, ROWS, KEYS)) for k in range(KEYS)}
    if {r[0]: r[1] for r in rows} != expected:
        raise HarnessError(f"smoke: {engine.name} returned a wrong sum per key for a {ROWS}-row aggregation: "
                           "its results cannot be trusted" + _pruning_hint(engine))
    if run.monitor is None:
        raise HarnessError(f"smoke: {engine.name}'s monitoring REST API is not reachable, so where the query ran "
                           "is unknown")
    try:
        _, plans = run.monitor.run(tag)
    except MonitorError as err:
        raise HarnessError(f"smoke: could not read {engine.name}'s executed plan: {err}") from None
    executed = coverage.executed_plan(engine.conf, plans)
    aggregates = [op for op in executed.get("accelerated", []) if "Aggregate" in op]
    if not aggregates:
        raise HarnessError(f"smoke: {engine.name} ran the aggregation without its accelerator (executed: "
                           f"{', '.join(executed.get('other', [])) or 'no plan'}): check the plugin's log and "
                           "`python -m harness doctor`" + _pruning_hint(engine))
    return list(dict.fromkeys(executed["accelerated"]))


def _pruning_hint(engine) -> str:
    """A plugin jar cut down by `bundle --gpu-arch` may be why a GPU engine fails: say so, and what to do."""
    if engine.role != "gpu":
        return ""
    try:
        with jars.open_jar(jars.find("rapids"), "rapids") as jar:
            pruned = PRUNED_MANIFEST in jar.namelist()
    except Exception:  # no jar, or a damaged one: preflight says that more precisely
        return ""
    return ("; the plugin jar is the bundle's pruned one (device code for other GPU architectures removed): if "
            "this GPU's architecture was not kept, or CUDA refuses the pruned library, rebuild the bundle with "
            "--gpu-arch set to this GPU's (nvidia-smi --query-gpu=compute_cap) or without --gpu-arch") if pruned else ""
