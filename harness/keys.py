"""Configuration key catalogues: every key Spark, the RAPIDS Accelerator and Comet declare, with its type.

Each catalogue is read from the bytecode of the classes that declare the keys (``javap`` on Spark's config
objects in the installed PySpark's jars, on the plugin's ``RapidsConf``, on Comet's ``CometConf``): a key's
string is followed by the builder call that creates it (``conf(...)``, ``buildConf(...)``, ``new
ConfigBuilder(...)``) and then by its typed builder (``intConf``, ``bytesConf``, ...). The catalogues are
committed as ``conf/keys/<name>-<version>.tsv`` and rewritten by ``python -m harness keys``, so checking a
configuration needs no JVM. ``ranges.tsv`` adds the ranges the suite knows, which bytecode does not state.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import zipfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Callable

from . import CONF_DIR, HarnessError
from .versions import pairing

KEYS_DIR = CONF_DIR / "keys"
# Keys built at run time from operator and expression names: boolean switches, not in any catalogue.
DYNAMIC = (
    (re.compile(r"spark\.rapids\.sql\.(exec|expression|input|partitioning|command|format|optimizer\.(cpu|gpu)\.(exec|expr))"
                r"\.[A-Za-z][\w.]*"), "boolean"),
    (re.compile(r"spark\.comet\.(exec|expression|operator|scan)\.[A-Za-z][\w]*\.(enabled|allowIncompatible)"), "boolean"),
    (re.compile(r"spark\.(executor|driver|task)\.resource\.[\w-]+\.amount"), "double"),
    (re.compile(r"spark\.(executor|driver)\.resource\.[\w-]+\.(discoveryScript|vendor)"), "string"),
    (re.compile(r"prepbench\.price\..+"), "double"),
)
_TYPES = {"boolean": "boolean", "int": "integer", "integer": "integer", "long": "long", "double": "double",
          "bytes": "bytes", "time": "time", "string": "string", "enum": "string", "regex": "string"}
_CREATED = re.compile(r'Method (?:\S+\.)?(?:conf|buildConf|buildStaticConf):\(Ljava/lang/String;\)|'
                      r'ConfigBuilder\."<init>":\(Ljava/lang/String;\)V')
_TYPED = re.compile(r"(?:ConfBuilder|ConfigBuilder)\.(\w+)Conf:")
_KEY = re.compile(r"// String (spark\.[\w.\-]+)$")
_CONSTANT = re.compile(r"putstatic\s+#\d+\s+// Field (\w+):Ljava/lang/String;")  # a key kept in a constant ...
_CONSTANT_READ = re.compile(r"Method \S*\.(\w+):\(\)Ljava/lang/String;")  # ... and read by another class


@dataclass(frozen=True)
class Catalogue:
    name: str  # file stem: spark, rapids, comet
    title: str
    version: Callable[[], str]
    classes: Callable[[], list[tuple[Path, list[str]]]]  # (jar, class members) that declare the keys

    @property
    def path(self) -> Path:
        return KEYS_DIR / f"{self.name}-{self.version()}.tsv"


def _spark_classes() -> list[tuple[Path, list[str]]]:
    import pyspark

    jars = Path(pyspark.__file__).parent / "jars"
    version = pyspark.__version__
    core = jars / f"spark-core_{pairing().scala}-{version}.jar"
    with zipfile.ZipFile(core) as archive:
        config_objects = sorted(n for n in archive.namelist()
                                if re.fullmatch(r"org/apache/spark/internal/config/\w+\$\.class", n))
    return [(jars / f"spark-sql-api_{pairing().scala}-{version}.jar", ["org/apache/spark/sql/internal/SqlApiConfHelper$.class"]),
            (core, config_objects),
            (jars / f"spark-catalyst_{pairing().scala}-{version}.jar",
             ["org/apache/spark/sql/internal/SQLConf$.class", "org/apache/spark/sql/internal/StaticSQLConf$.class"]),
            (jars / f"spark-connect_{pairing().scala}-{version}.jar",
             ["org/apache/spark/sql/connect/config/Connect$.class"])]


def _jar_classes(kind: str, members: list[str]) -> Callable[[], list[tuple[Path, list[str]]]]:
    def classes():
        from . import jars

        return [(jars.find(kind), [m.format(shim=pairing().shim) for m in members])]

    return classes


CATALOGUES = {c.name: c for c in (
    Catalogue("spark", "Spark", lambda: pairing().spark, _spark_classes),
    Catalogue("rapids", "RAPIDS Accelerator", lambda: pairing().rapids,
              _jar_classes("rapids", ["{shim}/com/nvidia/spark/rapids/RapidsConf$.class",
                                      "spark-shared/com/nvidia/spark/rapids/python/PythonConfEntries$.class"])),
    Catalogue("comet", "Comet", lambda: pairing().comet, _jar_classes("comet", ["org/apache/comet/CometConf$.class"])),
)}


def extract(classes: list[tuple[Path, list[str]]]) -> dict[str, str]:
    """key -> type for every key the classes' bytecode declares."""
    if not shutil.which("javap"):
        raise HarnessError("javap (part of the JDK) is needed to read config keys from bytecode; install a JDK 17")
    listings = []
    with tempfile.TemporaryDirectory() as tmp:
        for jar, members in classes:
            with zipfile.ZipFile(jar) as archive:
                for member in members:
                    archive.extract(member, tmp)
            listings.append(subprocess.run(["javap", "-c", "-p", "-constants", *(str(Path(tmp) / m) for m in members)],
                                           check=True, capture_output=True, text=True).stdout)
    return parse("\n".join(listings))  # one listing: a key's constant may live in an earlier class


def parse(javap_listing: str) -> dict[str, str]:
    """Pairs each key string that a builder call takes with the typed builder that follows it."""
    keys, constants, last, pending = {}, {}, None, None
    for line in javap_listing.splitlines():
        if m := _KEY.search(line):
            last = m.group(1)
        elif (m := _CONSTANT.search(line)) and last:
            constants[m.group(1)] = last
        elif (m := _CONSTANT_READ.search(line)) and m.group(1) in constants:
            last = constants[m.group(1)]
        elif _CREATED.search(line):
            pending = last
        elif (m := _TYPED.search(line)) and pending:
            keys[pending] = _TYPES.get(m.group(1), "string")  # a fallback entry (another key's type): unchecked text
            pending = None
    return keys


def write(name: str) -> Path:
    catalogue = CATALOGUES[name]
    keys = extract(catalogue.classes())
    header = (f"# Config keys of {catalogue.title} {catalogue.version()}, read from its bytecode by\n"
              f"# `python -m harness keys`. Do not edit by hand.\n# key\ttype\n")
    path = catalogue.path
    tmp = path.with_suffix(".tmp")
    tmp.write_text(header + "".join(f"{k}\t{t}\n" for k, t in sorted(keys.items())))
    os.replace(tmp, path)
    return path


def _read_tsv(path: Path) -> list[list[str]]:
    try:
        lines = path.read_text().splitlines()
    except OSError as err:
        raise HarnessError(f"cannot read {path}: {err}") from None
    return [line.split("\t") for line in lines if line and not line.startswith("#")]


@cache
def known() -> dict[str, str]:
    """key -> type over every catalogue (missing ones are skipped: they are rewritten by `keys`) and the suite's own."""
    found = {}
    for catalogue in CATALOGUES.values():
        if catalogue.path.is_file():
            found.update((k, t) for k, t, *_ in _read_tsv(catalogue.path))
    found.update((k, t) for k, t, *_ in _read_tsv(KEYS_DIR / "prepbench.tsv"))
    return found


@cache
def ranges() -> dict[str, tuple[float | None, float | None]]:
    """key -> (lowest, highest) allowed, inclusive, where the suite knows them."""
    found = {}
    for fields in _read_tsv(KEYS_DIR / "ranges.tsv"):
        key, low, high = (fields + ["", ""])[:3]
        found[key] = (float(low) if low else None, float(high) if high else None)
    return found


def type_of(key: str) -> str | None:
    kind = known().get(key)
    if kind is None:
        kind = next((t for pattern, t in DYNAMIC if pattern.fullmatch(key)), None)
    return kind
