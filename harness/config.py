"""Configuration, merged in one place: Spark properties in layers, plus the run's own settings.

Spark properties live in ``conf/`` in the ``spark-defaults.conf`` format and are merged in this order, later
layers winning: ``base.conf``, ``engines/<engine>.conf``, ``hosts/<host>.conf``, command-line overrides.
Every value remembers where it came from. Bad input (a missing file, a byte that is not UTF-8, an unknown
``spark.rapids.*`` or ``prepbench.*`` key, a value of the wrong type or out of range) is rejected before any
JVM starts, with a message that says where and what to write; a misspelled ``spark.sql.*``,
``spark.executor.*``, ``spark.driver.*`` or ``spark.comet.*`` key, which Spark would accept and ignore, is
warned about with the nearest key Spark (or Comet) declares.

Run settings (host, engines, scales, overrides, directories, session mode) come from ``PREPBENCH_*``
environment variables so that asv's benchmark processes, which asv starts itself, see the same settings as
the command that ran asv.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from . import CONF_DIR, REPO_ROOT, HarnessError, keys
from .jars import cache_dir
from .versions import pairing

COMMAND_LINE = "command line"
SUITE_PREFIX = "prepbench."  # the suite's own keys (engine, cost, verdict, sampling): never passed to Spark
AS_IS = "as-is"  # the scale of a user's own dataset: read as it is, once
RESULTS_DIR = REPO_ROOT / "results" / "runs"  # where run directories go unless told otherwise


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
    """(key, value, "file:line") for each property in a spark-defaults.conf style file.

    Lines are read as spark-submit reads them (java.util.Properties), and what it would read differently
    from what a person means is refused: a byte-order mark (it would become part of the first key), a
    ``#`` after a value (it would become part of the value) and a trailing backslash (a continuation)."""
    if not path.is_file():
        raise ConfigError(f"configuration file not found: {_show(path)}")
    raw = path.read_bytes()
    if raw.startswith(b"\xef\xbb\xbf"):
        raise ConfigError(f"{_show(path)}:1: the file starts with a UTF-8 byte-order mark, which spark-submit would "
                          "read as part of the first key: save it without one")
    entries = []
    for number, line_bytes in enumerate(raw.split(b"\n"), start=1):
        where = f"{_show(path)}:{number}"
        try:
            text = line_bytes.decode("utf-8").strip()
        except UnicodeDecodeError as err:
            raise ConfigError(f"{where}: byte {line_bytes[err.start]:#04x} at column {err.start + 1} is not UTF-8: "
                              "save the file as UTF-8") from None
        if not text or text.startswith(("#", "!")):
            continue
        key, value = _split(text)
        if not value:
            raise ConfigError(f"{where}: '{key}' has no value; write 'key value' or 'key=value'")
        if re.search(r"\s#", value):
            raise ConfigError(f"{where}: '{key}' has '#' after its value; spark-submit would keep the comment as part "
                              "of the value: put the comment on a line of its own")
        if value.endswith("\\"):
            raise ConfigError(f"{where}: '{key}' ends in a backslash (a line continuation): write the value on one line")
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
    parent = engine.split("-")[0]
    engine_chain = [parent, engine] if "-" in engine and (conf_dir / "engines" / f"{parent}.conf").is_file() else [engine]
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
    key, sep, value = str(text).partition("=")
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

    * ``spark.task.resource.gpu.amount``: one GPU shared by the executor's cores (GPUs / spark.executor.cores).
    * ``spark.rapids.memory.pinnedPool.size``: in local mode, at most a quarter of this host's memory.
    * ``spark.cores.max`` on a standalone master: spark.executor.instances x spark.executor.cores, when both
      are set (standalone ignores the number of executors and would take every core of every worker).
    """
    derived = dict(conf)
    if "spark.executor.resource.gpu.amount" in conf and "spark.task.resource.gpu.amount" not in conf:
        cores = int(conf.get("spark.executor.cores", Setting("1", "")).value)
        gpus = float(conf["spark.executor.resource.gpu.amount"].value)
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
    "time": (r"-?\d+\s*(?i:us|ms|s|m|min|h|d)?", "a duration such as 500ms, 30s or 5min"),
    "string": (r"(?s:.*)", "text"),
}
# Keys whose whole family is checked: an unknown one is an error (the suite's and the plugin's, where a typo
# silently changes what runs) or a warning with the nearest known key (Spark's and Comet's).
_REFUSED = {"spark.rapids.": "RAPIDS Accelerator", SUITE_PREFIX: "prepbench"}
_WARNED = {"spark.sql.": "Spark SQL", "spark.executor.": "Spark", "spark.driver.": "Spark", "spark.comet.": "Comet"}


def validate(key: str, value: str, source: str) -> None:
    kind = keys.type_of(key)
    if kind is None:
        for prefix, owner in _REFUSED.items():
            if key.startswith(prefix):
                raise ConfigError(f"{source}: unknown {owner} key '{key}': {_nearest(key, prefix)}")
        return
    pattern, expected = _TYPES[kind]
    if not re.fullmatch(pattern, value.strip()):
        raise ConfigError(f"{source}: {key} must be {expected} ({kind}), got '{value}'")
    low, high = keys.ranges().get(key, (None, None))
    if low is not None or high is not None:
        number = to_bytes(value) if kind == "bytes" else float(value)
        if (low is not None and number < low) or (high is not None and number > high):
            bounds = (f"from {low:g} to {high:g}" if low is not None and high is not None else
                      f"at least {low:g}" if low is not None else f"at most {high:g}")
            raise ConfigError(f"{source}: {key} must be {bounds}, got '{value}'")


def _nearest(key: str, prefix: str) -> str:
    near = difflib.get_close_matches(key, [k for k in keys.known() if k.startswith(prefix)], n=1, cutoff=0.6)
    return f"did you mean '{near[0]}'?" if near else "see the lists in conf/keys/ for the known keys"


def warnings(conf: SparkConf) -> list[str]:
    """Keys Spark (or Comet) would accept and ignore because it does not declare them: probably misspelled."""
    found = []
    for key, setting in sorted(conf.items()):
        owner = next((o for p, o in _WARNED.items() if key.startswith(p)), None)
        if owner and keys.type_of(key) is None:
            found.append(f"{setting.source}: {owner} declares no key '{key}', so it would do nothing: "
                         f"{_nearest(key, key.split('.')[0] + '.' + key.split('.')[1] + '.')}")
    return found


# ---------------------------------------------------------------------------------------------- redaction

REDACTED = "*********(redacted)"
# Spark's own rule (spark.redaction.regex, whose default is secret|password|token|access[.]?key), widened to
# what it misses: Azure's account.key, private and API keys, credentials, SAS tokens, signatures, encryption keys;
# and the credential settings of the storage connectors teams use, whose names carry none of those words:
# WASB's SAS token per container (fs.azure.sas.<container>.<account>...), ABFS's fixed SAS token and OAuth client
# secret, S3A's per-bucket and encryption keys, GCS's service-account key and refresh token, JDBC's password.
CREDENTIAL_SETTINGS = (r"fs\.azure\.sas\.|fs\.azure\.account\.oauth2\.client\.secret|fs\.azure\.account\.key|"
                       r"fs\.s3a\.(bucket\.[^.]+\.)?(access\.key|secret\.key|session\.token|encryption\.key|"
                       r"server-side-encryption\.key)|fs\.gs\.auth\.(service\.account\.private\.key|client\.secret|"
                       r"refresh\.token)|\bpassword\b")
SECRET_NAMES = (r"(?i)secret|passw(or)?d|pwd|token|access[._-]?key|account[._-]?key|private[._-]?key|api[._-]?key|"
                r"credential|signature|sas[._-]?key|session[._-]?key|encryption[._-]?key|auth|" + CREDENTIAL_SETTINGS)
_SECRET_NAME = re.compile(SECRET_NAMES)
_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)([^/\s:@]+):([^/\s@]+)@")
# name=value or name:value inside a value (JVM options, query strings, comma or JSON lists) with a secret name
_SECRET_PAIR = re.compile(r"(?P<name>[\w.\-]*(?:" + SECRET_NAMES.removeprefix("(?i)") + r")[\w.\-]*)(?P<sep>\s*[=:]\s*)"
                          r"(?P<value>\"[^\"]*\"|'[^']*'|[^\s,;\"'\]}&]+)", re.IGNORECASE)
# a SAS token's signature (sv=...&sig=...), whatever setting or URL carries it
_SAS_SIGNATURE = re.compile(r"(?i)(?<![\w.-])(sig=)[^&\s\"',;]+")


def redact(key: str, value: str) -> str:
    """The value as it may be recorded: secret-looking keys hidden, secret pairs and URL credentials stripped."""
    if _SECRET_NAME.search(key):
        return REDACTED
    return redact_text(value)


def redact_text(text: str) -> str:
    """Any text with secrets inside it hidden: `name=value` pairs with a secret-looking name, URL passwords."""
    text = _URL_CREDENTIALS.sub(lambda m: f"{m.group(1)}{m.group(2)}:{REDACTED}@", str(text))
    text = _SAS_SIGNATURE.sub(lambda m: f"{m.group(1)}{REDACTED}", text)
    return _SECRET_PAIR.sub(lambda m: f"{m.group('name')}{m.group('sep')}{REDACTED}", text)


def redact_override(override: str) -> str:
    key, _, value = str(override).partition("=")
    return f"{key}={redact(key, value)}"


def recorded(conf: SparkConf) -> dict[str, dict]:
    """The merged configuration as it is written into results: redacted, with each value's source."""
    return {
        key: {"value": redact(key, s.value), "source": s.source, **({"replaced": list(s.replaced)} if s.replaced else {})}
        for key, s in sorted(conf.items())
    }


# ---------------------------------------------------------------------------------------------- run settings

SCALE_PATTERN = re.compile(r"([1-9]\d*)(?:e(\d{1,3}))?")
SESSION_MODES = ("connect", "classic")


def scale_rows(scale: str) -> int:
    """Rows for a scale label such as '1e4' or '250000' (not 'as-is': a user dataset's rows are its own)."""
    match = SCALE_PATTERN.fullmatch(str(scale))
    if not match:
        raise ConfigError(f"scale '{scale}' must be a row count such as 1e4, 1e6 or 250000, or {AS_IS}")
    mantissa, exponent = match.groups()
    rows = int(mantissa) * 10 ** int(exponent or 0) if len(mantissa) + int(exponent or 0) < 12 else 10 ** 12
    if not 1_000 <= rows <= 1_000_000_000:
        raise ConfigError(f"scale '{scale}' is out of range: use 1e3 to 1e9 rows")
    return rows


def check_scale(scale: str) -> None:
    if scale != AS_IS:
        scale_rows(scale)


@dataclass(frozen=True)
class RunSettings:
    """What a run is: which host overlay, engines, scales and overrides, where data and results go, and how
    benchmark processes reach Spark (one Spark Connect server per engine, a classic session per process, or
    an endpoint a team already runs)."""

    host: str = "local"
    engines: tuple[str, ...] = ()  # empty: every engine in conf/engines/ that is not opt-in
    scales: tuple[str, ...] = ("1e6", "1e7")
    overrides: tuple[str, ...] = ()
    seed: int = 42
    workloads: tuple[str, ...] = ("*",)  # names or glob patterns, e.g. ("join_*", "ml_pipeline")
    sweep: bool = False  # add the configuration sweep (conf/sweep.conf) to the run
    smoke: bool = False  # one timed run per benchmark, and it is the instrumented one (bench --smoke)
    session: str = "connect"  # or classic: a Spark session per benchmark process
    remote: str = ""  # sc://host:port: benchmark this Spark Connect endpoint instead of starting a server
    remote_ui: str = ""  # its monitoring UI (default: port 4040 of its host)
    dask_scheduler: str = ""  # tcp:// or tls://HOST:PORT, or a scheduler file: a Dask cluster a team already runs
    data_dir: Path | str = field(default_factory=lambda: cache_dir() / "data")  # or a URI: file://, hdfs://, s3a://
    results_dir: Path = RESULTS_DIR

    ENV = {
        "host": "PREPBENCH_HOST",
        "engines": "PREPBENCH_ENGINES",
        "scales": "PREPBENCH_SCALES",
        "overrides": "PREPBENCH_CONF",
        "seed": "PREPBENCH_SEED",
        "workloads": "PREPBENCH_WORKLOADS",
        "sweep": "PREPBENCH_SWEEP",
        "smoke": "PREPBENCH_SMOKE",
        "session": "PREPBENCH_SESSION",
        "remote": "PREPBENCH_REMOTE",
        "remote_ui": "PREPBENCH_REMOTE_UI",
        "dask_scheduler": "PREPBENCH_DASK_SCHEDULER",
        "data_dir": "PREPBENCH_DATA_DIR",
        "results_dir": "PREPBENCH_RESULTS_DIR",
    }

    def __post_init__(self):
        for scale in self.scales:
            check_scale(scale)
        for override in self.overrides:
            parse_override(override)
        unknown = [e for e in self.engines if e not in engines()]
        if unknown:
            raise ConfigError(f"unknown engine(s) {unknown}: engines are files in conf/engines/ ({', '.join(engines())})")
        # CPU Spark first: the reference every other output is compared with runs before them (asv runs the
        # engine parameter in this order), so a wrong output is caught by the engine that produced it
        object.__setattr__(self, "engines", tuple(ordered_engines(self.engines) if self.engines else default_engines()))
        if self.session not in SESSION_MODES:
            raise ConfigError(f"session mode '{self.session}' must be one of {', '.join(SESSION_MODES)}")
        if self.remote and not re.fullmatch(r"sc://[^/\s:]+(:\d+)?(/.*)?", self.remote):
            raise ConfigError(f"--remote '{redact_text(self.remote)}' must be a Spark Connect URL such as sc://host:15002")
        scheduler = self.dask_scheduler
        if scheduler and "://" in scheduler and not re.fullmatch(r"(tcp|tls|ucx|inproc)://[^/\s]+", scheduler):
            raise ConfigError(f"--dask-scheduler '{scheduler}' must be an address such as tcp://host:8786 or tls://host:8786")
        if scheduler and "://" not in scheduler and not Path(scheduler).expanduser().is_file():
            raise ConfigError(f"--dask-scheduler-file {scheduler}: no such file (the file `dask scheduler "
                              "--scheduler-file FILE` writes)")

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
                values[name] = _overrides_from_json(var, raw)
            elif name == "seed":
                if not re.fullmatch(r"\d{1,18}", raw.strip()):
                    raise ConfigError(f"{var}={raw!r}: the data seed must be a whole number of 0 or more, e.g. {var}=42")
                values[name] = int(raw)
            elif name in ("sweep", "smoke"):
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
            self.ENV["smoke"]: "1" if self.smoke else "",
            self.ENV["session"]: self.session,
            self.ENV["remote"]: self.remote,
            self.ENV["remote_ui"]: self.remote_ui,
            self.ENV["dask_scheduler"]: self.dask_scheduler,
            self.ENV["data_dir"]: str(self.data_dir),
            self.ENV["results_dir"]: str(self.results_dir),
        }

    def spark_conf(self, engine: str) -> SparkConf:
        return merge(engine, self.host, self.overrides)

    def described(self) -> dict:
        """The settings as a run records them: every override redacted, never the raw PREPBENCH_CONF."""
        return {"host": self.host, "engines": list(self.engines), "scales": list(self.scales), "seed": self.seed,
                "workloads": list(self.workloads), "session": self.session, "smoke": self.smoke,
                "remote": redact_text(self.remote),
                "dask_scheduler": redact_text(self.dask_scheduler),
                "overrides": [redact_override(o) for o in self.overrides]}


def _overrides_from_json(var: str, raw: str) -> tuple[str, ...]:
    try:
        value = json.loads(raw)
    except ValueError as err:
        raise ConfigError(f"{var} must be a JSON list of \"key=value\" strings, e.g. {var}='[\"spark.sql.shuffle."
                          f"partitions=8\"]' ({err.msg} at character {err.pos})") from None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{var} must be a JSON list of \"key=value\" strings, got {type(value).__name__}")
    return tuple(value)


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


def engine_facts(engine: str, conf: SparkConf | None = None) -> tuple[str, str, bool]:
    """(role, backend, opt-in) as the engine's file declares them (prepbench.engine.*)."""
    conf = conf if conf is not None else merge(engine)
    value = lambda key, default: conf.get(f"{SUITE_PREFIX}engine.{key}", Setting(default, "")).value
    role, backend = value("role", "cpu"), value("backend", "spark")
    if role not in ("cpu", "cpu-native", "gpu"):
        raise ConfigError(f"{conf[SUITE_PREFIX + 'engine.role'].source}: prepbench.engine.role must be cpu, cpu-native "
                          f"or gpu, got '{role}'")
    return role, backend, value("opt_in", "false").lower() == "true"


def ordered_engines(chosen) -> list[str]:
    """Engines in the order a run uses them: CPU Spark first (the reference every other engine's output is
    compared with), then the other CPU engines, CPU-native, then GPU ones; otherwise as given."""
    order = ("cpu", "cpu-native", "gpu")
    facts = {e: engine_facts(e) for e in chosen}
    return sorted(chosen, key=lambda e: (order.index(facts[e][0]), facts[e][1] != "spark"))


def default_engines() -> list[str]:
    """The engines a run uses unless told otherwise: every one that is not opt-in, in reference order."""
    return ordered_engines(sorted(e for e in engines() if not engine_facts(e)[2]))
