"""The jars engines add to Spark (the RAPIDS Accelerator, Comet): where they are found, how they are fetched.

Neither is ever committed. Each is looked for at an explicit path (its environment variable; a path there
that does not exist is refused, never silently replaced), then in the configuration's ``spark.jars``, then in
the local cache; ``python -m harness fetch-jars`` downloads both from Maven Central (or
``$PREPBENCH_MAVEN_REPO``) and checks each against the SHA-1 pinned in ``pyproject.toml``.
"""

from __future__ import annotations

import errno
import hashlib
import os
import sys
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from . import EngineUnavailable, HarnessError
from .versions import JarPin, pairing

MAVEN_REPO_ENV = "PREPBENCH_MAVEN_REPO"
MAVEN_CENTRAL = "https://repo1.maven.org/maven2"


@dataclass(frozen=True)
class JarKind:
    """How the suite finds one kind of jar."""

    key: str  # its table in pyproject.toml
    title: str  # for messages
    env: str  # an explicit path
    marker: str  # how an entry of spark.jars names this jar

    @property
    def pin(self) -> JarPin:
        return getattr(pairing(), f"{self.key}_pin")


KINDS = {kind.key: kind for kind in (JarKind("rapids", "RAPIDS Accelerator", "RAPIDS_PLUGIN_JAR", "rapids-4-spark"),
                                     JarKind("comet", "Comet", "COMET_JAR", "comet-spark"))}


def cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(root) / "prepbench"


def cached_path(kind: str) -> Path:
    return cache_dir() / "jars" / KINDS[kind].pin.file_name


def find(kind: str, jars_setting: str = "") -> Path:
    """The jar, or an error naming every place tried and how to provide it."""
    spec = KINDS[kind]
    explicit = os.environ.get(spec.env)
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise EngineUnavailable(f"{spec.env}={explicit}: no such file. Point {spec.env} at a copy of "
                                    f"{spec.pin.file_name}, or unset it to use the cached jar")
        return path
    tried = []
    for entry in filter(None, (e.strip() for e in jars_setting.split(","))):
        if spec.marker in entry:  # local: means the same path on every node (nothing is shipped)
            path = Path(entry.removeprefix("file:").removeprefix("local:")).expanduser()
            if path.is_file():
                return path
            tried.append(f"spark.jars entry {entry} (no such file)")
    cached = cached_path(kind)
    if cached.is_file():
        return cached
    tried.append(f"{cached} (not downloaded)")
    raise EngineUnavailable(
        f"The {spec.title} jar ({spec.pin.file_name}) was not found.\n" + "".join(f"  tried: {t}\n" for t in tried)
        + f"Fetch it with `python -m harness fetch-jars`, or point {spec.env} at a copy of {spec.pin.file_name}.")


def open_jar(path: Path, kind: str) -> zipfile.ZipFile:
    """The jar as a zip, or a one-line error saying it is damaged and how to get a good copy."""
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as err:
        spec = KINDS[kind]
        raise EngineUnavailable(f"{path} is not a usable {spec.title} jar ({err}): download it again with "
                                f"`python -m harness fetch-jars`, or point {spec.env} at a good copy") from err


def fetch(kind: str, progress=print) -> Path:
    """Download the pinned jar into the cache, verify its SHA-1, and move it into place atomically."""
    pin = KINDS[kind].pin
    target = cached_path(kind)
    if target.is_file() and sha1(target) == pin.sha1:
        progress(f"{KINDS[kind].title} jar already cached: {target}")
        return target
    url = f"{os.environ.get(MAVEN_REPO_ENV, MAVEN_CENTRAL).rstrip('/')}/{pin.maven_path}"
    target.parent.mkdir(parents=True, exist_ok=True)
    progress(f"downloading {url}")
    with tempfile.NamedTemporaryFile(dir=target.parent, prefix=".partial-", delete=False) as part:
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                _copy_with_progress(response, part, int(response.headers.get("Content-Length") or 0), pin.file_name)
        except OSError as err:
            os.unlink(part.name)
            if err.errno == errno.ENOSPC:
                raise HarnessError(f"no space left for {pin.file_name} in {target.parent}: free some, or set "
                                   "XDG_CACHE_HOME to a disk with room") from None
            raise HarnessError(f"could not download {url}: {err}. On a host without network, copy {pin.file_name} "
                               f"there and set {KINDS[kind].env} to its path") from None
    digest = sha1(Path(part.name))
    if digest != pin.sha1:
        os.unlink(part.name)
        raise HarnessError(f"the downloaded {pin.file_name} has SHA-1 {digest}, not the pinned {pin.sha1}: refusing it")
    os.chmod(part.name, 0o644)
    os.replace(part.name, target)
    progress(f"{KINDS[kind].title} jar verified and cached: {target}")
    return target


def _copy_with_progress(source, target, total: int, name: str, out=None) -> None:
    """Copy a download, showing how much has arrived: a bar rewritten in place on a terminal, a line at each
    quarter otherwise."""
    out = out or sys.stdout
    tty, done, shown = out.isatty(), 0, -1
    while chunk := source.read(1 << 22):
        target.write(chunk)
        done += len(chunk)
        if not total:
            continue
        fraction = done / total
        if tty:
            bar = "#" * int(fraction * 30)
            out.write(f"\r  {name}: [{bar:<30}] {fraction:4.0%} of {total / 2**20:,.0f} MiB")
        elif int(fraction * 4) > shown:
            shown = int(fraction * 4)
            out.write(f"  {name}: {fraction:.0%} of {total / 2**20:,.0f} MiB\n")
        out.flush()
    if tty and total:
        out.write("\n")


def sha1(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha1").hexdigest()
