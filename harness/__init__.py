"""prepbench: identical Spark data-preparation workloads under CPU Spark and the RAPIDS Accelerator.

Modules, one job each: ``config`` (layered Spark properties and run settings), ``versions`` (the pinned
Spark/plugin pair), ``plugin`` (the RAPIDS jar), ``session`` (one SparkSession per process), ``data``
(generated Parquet datasets), ``workloads`` (the registry), ``records`` (results on disk), ``trial`` (what
asv and the tests run), ``gpu`` (NVML), ``metrics`` (Spark's figures), ``cost`` (cost per row, the verdict),
``coverage`` (GPU plan coverage), ``report`` (summaries, the comparison), ``dashboard`` (the comparison
site), ``browser`` (Chromium for its tests), ``cluster`` (what a cluster master changes), ``standalone`` (a
loopback cluster), ``cli`` (``python -m harness``).
"""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
CONF_DIR = REPO_ROOT / "conf"


class HarnessError(Exception):
    """An error the user can fix; its message says how. The CLI prints it without a traceback."""


class EngineUnavailable(HarnessError):
    """An engine cannot run on this host (no plugin jar, no GPU): asv shows it as skipped, with this reason."""
