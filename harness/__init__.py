"""prepbench: identical data-preparation workloads under CPU Spark, Comet, the RAPIDS Accelerator, pandas,
cuDF and Dask, outputs checked against each other, time turned into cost per row and a verdict.

Modules, one job each. Settings: ``config`` (layered properties, run settings), ``keys`` (the catalogues
of known keys), ``versions`` and ``jars`` (the pinned Spark, plugin and Comet jars), ``plugin`` and
``comet`` (their checks), ``presets``. Running: ``bench`` (one run, checks to site), ``services`` (what a
run starts once), ``connect`` (a Spark Connect server), ``session`` (Spark sessions), ``backends/`` (how
an engine runs a workload), ``trial`` (one benchmark, what asv and the tests run), ``smoke`` (is the
accelerator really used), ``data`` (generated Parquet), ``workloads/`` (the registry), ``fingerprint``
(output checks), ``rest`` (Spark's monitoring API), ``gpu`` (NVML), ``coverage`` (plan coverage).
Results: ``records`` (written once, atomically), ``results`` (the typed model, read once), ``cost``
(cost per row, the verdict), ``report`` (summaries), ``dashboard`` (the site), ``browser`` (Chromium for
its tests). Clusters: ``cluster``, ``standalone``. Offline: ``bundle``, ``fatbin``. ``cli``: the commands.
"""

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
CONF_DIR = REPO_ROOT / "conf"

BUNDLED_JAVA = REPO_ROOT / "jre"  # a Java runtime installed beside the suite by an offline bundle
if "JAVA_HOME" not in os.environ and (BUNDLED_JAVA / "bin" / "java").is_file():
    os.environ["JAVA_HOME"] = str(BUNDLED_JAVA)  # for every JVM the suite starts (PySpark reads JAVA_HOME too)


class HarnessError(Exception):
    """An error the user can fix; its message says how. The CLI prints it without a traceback."""


class EngineUnavailable(HarnessError):
    """An engine cannot run on this host (no plugin jar, no GPU): asv shows it as skipped, with this reason."""
