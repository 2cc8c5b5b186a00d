"""Configuration, merged in one place: Spark properties in layers, plus the run's own settings.

Spark properties live in ``conf/`` in the ``spark-defaults.conf`` format and are merged in this order, later
layers winning: ``base.conf``, ``engines/<engine>.conf``, ``hosts/<host>.conf``, command-line overrides.
Every value remembers where it came from. Bad input (a missing file, an unknown ``spark.rapids.*`` key, a
value of the wrong type) is rejected before any JVM starts, with a message that says what to change.

Run settings (host, scales, overrides, directories) come from ``PREPBENCH_*`` environment variables so
that asv's benchmark processes, which asv starts itself, see the same settings as the command that ran asv.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from . import CONF_DIR, REPO_ROOT, HarnessError
from .plugin import DYNAMIC_KEY_PATTERN, cache_dir, catalogue_path
from .versions import pairing

COMMAND_LINE = "command line"


class ConfigError(HarnessError):
    """A configuration file, key, value or setting is wrong; the message names where and what to write."""


@dataclass(frozen=True)
class Setting:
    value: str
    source: str  # "conf/base.conf:12" or "command line"
    replaced: tuple[str, ...] = ()  # sources of earlier layers this value overrode


SparkConf = dict[str, Setting]


# ---------------------------------------------------------------------------------------------- files


def read_properties(path: Path) -> list[tuple[str, str, str]]:
    """(key, value, "file:line") for each property in a spark-defaults.conf style file."""
    if not path.is_file():
        raise ConfigError(f"configuration file not found: {_show(path)}")
    entries = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        text = line.strip()
        if not text or text.startswith(("#", "!")):
            continue
        key, value = _split(text)
        where = f"{_show(path)}:{number}"
        if not value:
            raise ConfigError(f"{where}: '{key}' has no value; write 'key value' or 'key=value'")
        entries.append((key, value, where))
    return entries


def _split(text: str) -> tuple[str, str]:
    """'key value', 'key=value' or 'key: value', as java.util.Properties (and so spark-submit) reads them."""
    match = re.match(r"([^\s=:]+)\s*[=:\s]\s*(.*)$", text)
    return (match.group(1), match.group(2).strip()) if match else (text, "")


def _show(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def available(kind: str, conf_dir: Path = CONF_DIR) -> list[str]:
    """The engines or hosts that have a file in conf/<kind>/."""
    return sorted(p.stem for p in (conf_dir / kind).glob("*.conf"))


def layer_files(engine: str, host: str, conf_dir: Path = CONF_DIR) -> list[Path]:
    """base, then the engine (a variant such as gpu-rapids-shuffle layers over its parent gpu), then the host."""
    engine_chain = [engine.split("-")[0], engine] if "-" in engine else [engine]
    files = [conf_dir / "base.conf"]
    for kind, name in [("engines", e) for e in engine_chain] + [("hosts", host)]:
        path = conf_dir / kind / f"{name}.conf"
        if not path.is_file():
            known = ", ".join(available(kind, conf_dir)) or "none"
            raise ConfigError(f"no {kind[:-1]} named '{name}': {_show(path)} does not exist (known: {known})")
        files.append(path)
    return files


# ---------------------------------------------------------------------------------------------- merge


def parse_override(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip() or not value.strip():
        raise ConfigError(f"override '{text}' must look like key=value, e.g. spark.sql.shuffle.partitions=8")
    return key.strip(), value.strip()


def merge(engine: str, host: str = "local", overrides: tuple[str, ...] = (), conf_dir: Path = CONF_DIR) -> SparkConf:
    """Base, engine, host, then command-line overrides, validated; each value keeps its source."""
    layers = [entry for path in layer_files(engine, host, conf_dir) for entry in read_properties(path)]
    layers += [(*parse_override(o), COMMAND_LINE) for o in overrides]
    merged: SparkConf = {}
    for key, value, source in layers:
        value = value.replace("${spark.shim}", pairing().shim).replace("${conf.dir}", str(conf_dir.resolve()))
        validate(key, value, source)
        previous = merged.get(key)
        replaced = (*previous.replaced, previous.source) if previous else ()
        merged[key] = Setting(value, source, replaced)
    return derive(merged)


def derive(conf: SparkConf) -> SparkConf:
    """Settings that follow from others, so a host profile states each fact once.

    * ``spark.task.resource.gpu.amount``: one GPU shared by the executor's cores (1 / spark.executor.cores).
    * ``spark.rapids.memory.pinnedPool.size``: in local mode, at most a quarter of this host's memory.
    * ``spark.cores.max`` on a standalone master: spark.executor.instances x spark.executor.cores, when both
      are set (standalone ignores the number of executors and would take every core of every worker).
    """
    derived = dict(conf)
    if "spark.executor.resource.gpu.amount" in conf and "spark.task.resource.gpu.amount" not in conf:
        cores = int(conf.get("spark.executor.cores", Setting("1", "")).value)
        gpus = int(conf["spark.executor.resource.gpu.amount"].value)
        derived["spark.task.resource.gpu.amount"] = Setting(f"{gpus / cores:.6g}", "derived: gpu amount / spark.executor.cores")
    standalone = conf.get("spark.master", Setting("", "")).value.startswith("spark://")
    layout = "spark.executor.instances" in conf and "spark.executor.cores" in conf
    if standalone and layout and "spark.cores.max" not in conf:
        cores = int(conf["spark.executor.instances"].value) * int(conf["spark.executor.cores"].value)
        derived["spark.cores.max"] = Setting(str(cores), "derived: spark.executor.instances x spark.executor.cores")
    pinned = conf.get("spark.rapids.memory.pinnedPool.size")
    local = conf.get("spark.master", Setting("local", "")).value.startswith("local")
    limit = host_memory_bytes() // 4
    if pinned and local and limit and to_bytes(pinned.value) > limit:
        derived["spark.rapids.memory.pinnedPool.size"] = Setting(
            f"{limit // 2**20}m", f"derived: a quarter of host memory (was {pinned.value} at {pinned.source})",
            (*pinned.replaced, pinned.source))
    return derived


_UNITS = {"": 1, "b": 1, "k": 2**10, "kb": 2**10, "m": 2**20, "mb": 2**20, "g": 2**30, "gb": 2**30,
          "t": 2**40, "tb": 2**40, "p": 2**50, "pb": 2**50}


def to_bytes(size: str) -> int:
    number, unit = re.fullmatch(r"(-?\d+)\s*([a-zA-Z]*)", size.strip()).groups()
    return int(number) * _UNITS[unit.lower()]


def host_memory_bytes() -> int:
    try:
        return int(re.search(r"MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text()).group(1)) * 1024
    except (OSError, AttributeError):
        return 0


# ---------------------------------------------------------------------------------------------- validation

_TYPES = {
    "boolean": (r"(?i:true|false)", "true or false"),
    "integer": (r"[+-]?\d+", "a whole number"),
    "long": (r"[+-]?\d+", "a whole number"),
    "double": (r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", "a number"),
    "bytes": (r"-?\d+\s*(?i:b|k|kb|m|mb|g|gb|t|tb|p|pb)?", "a size such as 512m or 4g"),
    "string": (r".*", "text"),
}


@cache
def known_keys() -> dict[str, str]:
    """key -> type for the Spark keys the suite checks and every key the pinned plugin declares."""
    keys = {}
    for path in (CONF_DIR / "keys" / "spark.tsv", CONF_DIR / "keys" / "prepbench.tsv", catalogue_path()):
        for line in path.read_text().splitlines():
            if line and not line.startswith("#"):
                key, kind = line.split("\t")
                keys[key] = kind
    return keys


SUITE_PREFIX = "prepbench."  # the suite's own keys (cost, verdict, sampling): never passed to Spark
_CHECKED_PREFIXES = {"spark.rapids.": ("RAPIDS Accelerator", catalogue_path),
                     SUITE_PREFIX: ("prepbench", lambda: CONF_DIR / "keys" / "prepbench.tsv")}


def validate(key: str, value: str, source: str) -> None:
    kind = known_keys().get(key)
    if kind is None and DYNAMIC_KEY_PATTERN.fullmatch(key):
        kind = "boolean"
    elif kind is None and key.startswith(f"{SUITE_PREFIX}price."):
        kind = "double"
    elif kind is None:
        for prefix, (owner, listing) in _CHECKED_PREFIXES.items():
            if key.startswith(prefix):
                near = difflib.get_close_matches(key, [k for k in known_keys() if k.startswith(prefix)], n=1, cutoff=0.6)
                hint = f"did you mean '{near[0]}'?" if near else f"see {_show(listing())} for the known keys"
                raise ConfigError(f"{source}: unknown {owner} key '{key}': {hint}")
    if kind is not None:
        pattern, expected = _TYPES[kind]
        if not re.fullmatch(pattern, value.strip()):
            raise ConfigError(f"{source}: {key} must be {expected} ({kind}), got '{value}'")


# ---------------------------------------------------------------------------------------------- redaction

REDACTED = "*********(redacted)"
_SECRET_KEY = re.compile(r"(?i)secret|passw(or)?d|token|credential|access[._-]?key|private[._-]?key|api[._-]?key|auth")
_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)([^/\s:@]+):([^/\s@]+)@")
_SECRET_VALUE = re.compile(r"(?i)(password|passwd|pwd|token|secret|apikey|api_key)=([^&\s;]+)")


def redact(key: str, value: str) -> str:
    """The value as it may be recorded: secret-looking keys hidden, credentials stripped from URLs."""
    if _SECRET_KEY.search(key):
        return REDACTED
    value = _URL_CREDENTIALS.sub(lambda m: f"{m.group(1)}{m.group(2)}:{REDACTED}@", value)
    return _SECRET_VALUE.sub(lambda m: f"{m.group(1)}={REDACTED}", value)


def recorded(conf: SparkConf) -> dict[str, dict]:
    """The merged configuration as it is written into results: redacted, with each value's source."""
    return {
        key: {"value": redact(key, s.value), "source": s.source, **({"replaced": list(s.replaced)} if s.replaced else {})}
        for key, s in sorted(conf.items())
    }


# ---------------------------------------------------------------------------------------------- run settings

SCALE_PATTERN = re.compile(r"[1-9]\d*(e\d+)?")


def scale_rows(scale: str) -> int:
    """Rows for a scale label such as '1e4' or '250000'."""
    if not SCALE_PATTERN.fullmatch(scale):
        raise ConfigError(f"scale '{scale}' must be a row count such as 1e4, 1e6 or 250000")
    rows = int(float(scale))
    if not 1_000 <= rows <= 1_000_000_000:
        raise ConfigError(f"scale '{scale}' is out of range: use 1e3 to 1e9 rows")
    return rows


@dataclass(frozen=True)
class RunSettings:
    """What a run is: which host overlay, which scales, which overrides, and where data and results go."""

    host: str = "local"
    engines: tuple[str, ...] = ("cpu", "gpu")
    scales: tuple[str, ...] = ("1e6", "1e7")
    overrides: tuple[str, ...] = ()
    seed: int = 42
    workloads: tuple[str, ...] = ("*",)  # names or glob patterns, e.g. ("join_*", "ml_pipeline")
    sweep: bool = False  # add the configuration sweep (conf/sweep.conf) to the run
    data_dir: Path | str = field(default_factory=lambda: cache_dir() / "data")  # or a URI: file://, hdfs://, s3a://
    results_dir: Path = REPO_ROOT / "results" / "runs"

    ENV = {
        "host": "PREPBENCH_HOST",
        "engines": "PREPBENCH_ENGINES",
        "scales": "PREPBENCH_SCALES",
        "overrides": "PREPBENCH_CONF",
        "seed": "PREPBENCH_SEED",
        "workloads": "PREPBENCH_WORKLOADS",
        "sweep": "PREPBENCH_SWEEP",
        "data_dir": "PREPBENCH_DATA_DIR",
        "results_dir": "PREPBENCH_RESULTS_DIR",
    }

    def __post_init__(self):
        for scale in self.scales:
            scale_rows(scale)
        for override in self.overrides:
            parse_override(override)
        unknown = [e for e in self.engines if e.split("-")[0] not in engines()]
        if unknown:
            raise ConfigError(f"unknown engine(s) {unknown}: engines are files in conf/engines/ ({', '.join(engines())})")

    @classmethod
    def from_env(cls, environ=os.environ) -> "RunSettings":
        values = {}
        for name, var in cls.ENV.items():
            raw = environ.get(var)
            if not raw:
                continue
            if name in ("scales", "workloads", "engines"):
                values[name] = tuple(s.strip() for s in raw.split(",") if s.strip())
            elif name == "overrides":
                values[name] = tuple(json.loads(raw))
            elif name == "seed":
                values[name] = int(raw)
            elif name == "sweep":
                values[name] = raw.lower() in ("1", "true", "yes")
            elif name == "data_dir" and "://" in raw:
                values[name] = raw
            elif name in ("data_dir", "results_dir"):
                values[name] = Path(raw).expanduser()
            else:
                values[name] = raw
        return cls(**values)

    def to_env(self) -> dict[str, str]:
        """The environment that makes RunSettings.from_env() in a child process return these settings."""
        return {
            self.ENV["host"]: self.host,
            self.ENV["engines"]: ",".join(self.engines),
            self.ENV["scales"]: ",".join(self.scales),
            self.ENV["overrides"]: json.dumps(list(self.overrides)),
            self.ENV["seed"]: str(self.seed),
            self.ENV["workloads"]: ",".join(self.workloads),
            self.ENV["sweep"]: "1" if self.sweep else "",
            self.ENV["data_dir"]: str(self.data_dir),
            self.ENV["results_dir"]: str(self.results_dir),
        }

    def spark_conf(self, engine: str) -> SparkConf:
        return merge(engine, self.host, self.overrides)


def sweep_points(conf_dir: Path = CONF_DIR) -> list[str]:
    """`key=value` settings of the configuration sweep, from conf/sweep.conf, each value validated."""
    points = []
    for key, values, source in read_properties(conf_dir / "sweep.conf"):
        for value in (v.strip() for v in values.split(",")):
            validate(key, value, source)
            points.append(f"{key}={value}")
    return points


def engines() -> list[str]:
    """Every engine with a file in conf/engines/: adding an engine is adding a file."""
    return available("engines")
