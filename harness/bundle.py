"""An offline bundle: everything a GPU host without network needs to install and run the suite.

``python -m harness bundle OUT`` writes the suite's source (the committed tree), wheels for every pinned
Python dependency (PySpark built into a wheel here, the rest downloaded for the target Python and platform),
the plugin jar, ``SHA256SUMS`` over all of it, and ``install.sh``, which checks every file and installs with
pip's ``--no-index``. The bundle is built in ``OUT.partial`` and renamed when complete. Java is not included:
the host needs a Java 17 or 21 runtime (``python -m harness doctor`` checks).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from . import REPO_ROOT, HarnessError, plugin
from .versions import pairing

INSTALL_SH = r"""#!/usr/bin/env bash
# Installs prepbench from this bundle, with no network: checks every file, then installs into a virtualenv.
# Usage: ./install.sh [TARGET_DIR]   (default ./prepbench); needs python3 (with venv) and Java 17 or 21.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
target=$(mkdir -p "${1:-$PWD/prepbench}" && cd "${1:-$PWD/prepbench}" && pwd)
(cd "$here" && sha256sum --quiet --check SHA256SUMS) || { echo "bundle damaged: a checksum does not match" >&2; exit 1; }
tar -xzf "$here/prepbench-src.tar.gz" -C "$target"
python3 -m venv "$target/.venv"
"$target/.venv/bin/pip" install --quiet --no-index --find-links "$here/wheels" -e "$target[test]"
jars="${XDG_CACHE_HOME:-$HOME/.cache}/prepbench/jars"
mkdir -p "$jars" && cp "$here"/jars/*.jar "$jars/"
echo "installed in $target; next: cd $target && .venv/bin/python -m harness doctor"
"""


# glibc 2.28 or newer is what the RAPIDS plugin needs, so wheels up to manylinux_2_28 fit any host it runs on.
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64")


def requirements() -> list[str]:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    return [*project["dependencies"], *project["optional-dependencies"]["test"]]


def build(output: Path, python_version: str, platforms=PLATFORMS, progress=print) -> Path:
    output = Path(output)
    if output.exists():
        raise HarnessError(f"{output} exists: remove it or choose another directory")
    partial = output.with_name(output.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    (partial / "wheels").mkdir(parents=True)
    try:
        _source(partial / "prepbench-src.tar.gz", progress)
        _wheels(partial / "wheels", python_version, platforms, progress)
        _jar(partial / "jars", progress)
        (partial / "install.sh").write_text(INSTALL_SH)
        (partial / "install.sh").chmod(0o755)
        _checksums(partial)
        os.rename(partial, output)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    size = sum(f.stat().st_size for f in output.rglob("*") if f.is_file())
    progress(f"bundle ready: {output} ({size / 2**30:.2f} GiB); on the offline host run {output.name}/install.sh")
    return output


def _run(command: list[str], what: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise HarnessError(f"could not {what}:\n{done.stderr[-3000:]}")


def _source(target: Path, progress) -> None:
    progress("source: the committed tree (git archive HEAD)")
    _run(["git", "-C", str(REPO_ROOT), "archive", "--format=tar.gz", "-o", str(target), "HEAD"],
         "archive the source (is this a git checkout with a commit?)")


def _wheels(target: Path, python_version: str, platforms, progress) -> None:
    pip = [sys.executable, "-m", "pip"]
    spark = [r for r in requirements() if r.startswith("pyspark")]
    others = [r for r in requirements() if not r.startswith("pyspark")]
    progress(f"wheels: building {spark[0]} (PyPI ships it as source), then downloading the rest for "
             f"Python {python_version} on {platforms[0]}")
    _run([*pip, "wheel", "--quiet", "--no-deps", "-w", str(target), *spark], f"build a wheel of {spark[0]}")
    tags = [arg for platform in platforms for arg in ("--platform", platform)]
    _run([*pip, "download", "--quiet", "--only-binary=:all:", "--implementation", "cp", "--python-version",
          python_version, *tags, "-d", str(target), *others, "py4j==0.10.9.9", "setuptools>=68"],
         "download the wheels (is PyPI reachable?)")


def _jar(target: Path, progress) -> None:
    jar = plugin.find_jar()
    target.mkdir()
    progress(f"plugin jar: {jar}")
    try:
        os.link(jar, target / pairing().jar_name)
    except OSError:
        shutil.copy2(jar, target / pairing().jar_name)


def _checksums(root: Path) -> None:
    lines = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        with open(path, "rb") as f:
            lines.append(f"{hashlib.file_digest(f, 'sha256').hexdigest()}  {path.relative_to(root)}\n")
    (root / "SHA256SUMS").write_text("".join(lines))
