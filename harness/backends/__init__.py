"""Engines and their backends: how a benchmark process runs a workload under an engine.

An engine is a file in ``conf/engines/``; besides its Spark properties it names its role
(``prepbench.engine.role``: ``cpu``, ``cpu-native`` or ``gpu``) and its backend (``prepbench.engine.backend``):
``spark`` (CPU Spark, Comet, the RAPIDS Accelerator: engines differ by configuration alone), ``pandas``
(pandas, and cuDF through ``cudf.pandas``) or ``dask`` (Dask DataFrame, and dask-cudf). A backend is one
module in this package declaring ``BACKEND``; adding a backend is adding a file, never editing a list.

What a backend gives a trial (``trial.Trial`` drives it the same way for every engine):

* ``form(workload)``: None if the engine can run the workload, else why it has no form of it (shown as
  "not defined", never as a failure);
* ``preflight(engine)``: the checks that need no JVM or GPU context, raising ``EngineUnavailable`` with
  what to do; returns the configuration as applied (jars, class paths and options the harness adds);
* ``service(engine, conf, log_dir, settings)``: what a run starts once per engine (a Spark Connect server, a
  Dask cluster) as a ``services.Service``, which ``bench`` starts, waits for and stops; or the address of one a
  team already runs (``--dask-scheduler``), checked; or None;
* ``open(engine, conf, settings, address, run_dir)``: this process's session, a ``Session`` (a classic Spark
  session writes its event log under the run directory).
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from functools import cache
from typing import Protocol

from .. import HarnessError
from ..config import SUITE_PREFIX, RunSettings, SparkConf, Setting, engine_facts, recorded


@dataclass(frozen=True)
class Engine:
    """An engine as one run uses it: its merged configuration (with a sweep variant, if any) and facts."""

    name: str
    role: str
    backend: str
    conf: SparkConf
    variant: str = ""

    @classmethod
    def of(cls, name: str, settings: RunSettings, variant: str = "") -> "Engine":
        overrides = (*settings.overrides, variant) if variant else settings.overrides
        from ..config import merge

        conf = merge(name, settings.host, overrides)
        role, backend, _ = engine_facts(name, conf)
        if backend not in backends():
            raise HarnessError(f"engine {name}: prepbench.engine.backend '{backend}' is not a backend "
                               f"(known: {', '.join(backends())})")
        return cls(name, role, backend, conf, variant)

    def value(self, key: str, default: str = "") -> str:
        return self.conf.get(key, Setting(default, "")).value

    @property
    def suite_conf(self) -> dict[str, str]:
        """The suite's own keys (prices, thresholds, the engine's facts) as key -> value."""
        return {k: s.value for k, s in self.conf.items() if k.startswith(SUITE_PREFIX)}

    def recorded(self, applied: SparkConf | None = None) -> dict:
        """The configuration a record stores: redacted, each value with its source; a dataframe engine
        records only the keys it reads (the suite's own), not Spark's."""
        conf = applied if applied is not None else self.conf
        if self.backend != "spark":
            conf = {k: s for k, s in conf.items() if not k.startswith("spark.")}
        return recorded(conf)

    @property
    def backend_module(self):
        return backends()[self.backend]


class Session(Protocol):
    start_seconds: float
    described: dict  # how this session runs (mode, endpoint, what the endpoint reported), for the record

    def inputs(self, workload, paths: dict[str, str]): ...
    def prepare(self, workload, inputs) -> None: ...
    def force(self, workload, inputs) -> dict | None: ...
    # (fingerprint, output rows, the rows when at most `limit`, the seconds of the run itself where timed apart
    # from its fingerprint: that run is the benchmark's warm-up)
    # (`expected_rows`: at most how many rows the output is expected to have, which picks the cheaper way to check it)
    def output(self, workload, inputs, limit: int, expected_rows: int | None = None) -> tuple[dict, int, object, float | None]: ...
    def instrumented(self, workload, inputs, label: str) -> tuple[float, dict | None, dict, dict]: ...
    def executors(self) -> list[dict]: ...
    def cleanup(self, workload) -> None: ...


@cache
def backends() -> dict:
    found = {}
    for module in pkgutil.iter_modules(__path__):
        backend = getattr(importlib.import_module(f"{__name__}.{module.name}"), "BACKEND", None)
        if backend is not None:
            found[backend.name] = backend
    return found
