"""Installs prepbench from an offline bundle (see harness/bundle.py); the Python standard library only.

1. Verify: every file listed in SHA256SUMS beside this script, and each payload part of MANIFEST.json, found
   by name or, among the files given on the command line, by its checksum (so parts may come in any order,
   from anywhere). Nothing is written before everything checks out.
2. Create TARGET_DIR/.venv and install the bootstrap zstandard wheel into it, with pip --no-index.
3. Unpack the payload (the parts, in order, through zstd) into TARGET_DIR: the suite's source there, a Java
   runtime in TARGET_DIR/jre (the suite uses it when JAVA_HOME is not set), the jars into the jar cache.
4. Install the suite and its pinned wheels into the virtualenv with pip --no-index.
A failure after step 1 removes TARGET_DIR, which must not exist or be empty.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def fail(message: str) -> None:
    print(message, file=sys.stderr)
    sys.exit(1)


def sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def verified_parts(manifest: dict, given: list[Path]) -> list[Path]:
    by_digest = {}
    for path in given:
        if not path.is_file():
            fail(f"{path}: no such file (give the bundle's payload parts, in any order)")
        by_digest.setdefault(sha256(path), path)
    found = []
    for part in manifest["parts"]:
        beside = HERE / part["name"]
        if part["sha256"] in by_digest:
            found.append(by_digest[part["sha256"]])
        elif beside.is_file() and sha256(beside) == part["sha256"]:
            found.append(beside)
        else:
            state = "its checksum does not match" if beside.is_file() else "it is missing"
            fail(f"bundle damaged: part {part['name']} ({part['bytes']} bytes): {state}; copy it again, or give "
                 "its path after the target directory")
    return found


def verify_files() -> None:
    parts = {p["name"] for p in json.loads((HERE / "MANIFEST.json").read_text())["parts"]}
    for line in (HERE / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split("  ", 1)
        if name in parts:
            continue  # checked by verified_parts, wherever they are
        path = HERE / name
        if not path.is_file() or sha256(path) != digest:
            fail(f"bundle damaged: {name} is missing or its checksum does not match; copy the bundle again")


def unpack(parts: list[Path], target: Path, jar_cache: Path) -> None:
    """Runs in the new virtualenv, where zstandard is installed."""
    import zstandard

    class Joined:
        """The parts read one after another as one stream."""

        def __init__(self, paths):
            self.paths, self.current = list(paths), None

        def read(self, size=-1):
            while True:
                if self.current is None:
                    if not self.paths:
                        return b""
                    self.current = open(self.paths.pop(0), "rb")
                chunk = self.current.read(size)
                if chunk:
                    return chunk
                self.current.close()
                self.current = None

    reader = zstandard.ZstdDecompressor(max_window_size=2**31).stream_reader(Joined(parts))
    with tarfile.open(fileobj=reader, mode="r|") as tar:
        for member in tar:
            top, _, rest = member.name.partition("/")
            if top == "src" and rest:
                member.name = rest
                tar.extract(member, target, filter="data")
            elif top == "jre" and rest:
                tar.extract(member, target, filter="data")
            elif top == "jars" and rest and member.isfile():
                member.name = rest
                tar.extract(member, jar_cache, filter="data")
            elif top in ("wheels", "BUNDLE.json"):
                tar.extract(member, target / ".bundle", filter="data")


def main(argv: list[str]) -> None:
    if len(argv) >= 2 and argv[0] == "--unpack":
        target, jar_cache, *parts = argv[1:]
        unpack([Path(p) for p in parts], Path(target), Path(jar_cache))
        return
    if not argv or argv[0] in ("-h", "--help"):
        fail("usage: install.sh TARGET_DIR [PART ...]")
    if sys.version_info < (3, 11):
        fail(f"python3 is {sys.version.split()[0]}: the suite needs Python 3.11 or newer")
    target = Path(argv[0]).resolve()
    manifest = json.loads((HERE / "MANIFEST.json").read_text())
    verify_files()
    parts = verified_parts(manifest, [Path(p) for p in argv[1:]])
    if target.exists() and any(target.iterdir()):
        fail(f"{target} is not empty: choose a new directory")
    print(f"bundle verified ({len(parts)} part(s)); installing into {target}")
    created = not target.exists()
    target.mkdir(parents=True, exist_ok=True)
    try:
        venv_python = target / ".venv" / "bin" / "python"
        subprocess.run([sys.executable, "-m", "venv", str(target / ".venv")], check=True)
        pip = [str(venv_python), "-m", "pip", "install", "--quiet", "--no-index"]
        subprocess.run([*pip, "--find-links", str(HERE / "bootstrap"), "zstandard"], check=True)
        jar_cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "prepbench" / "jars"
        jar_cache.mkdir(parents=True, exist_ok=True)
        print("unpacking the payload")
        subprocess.run([str(venv_python), __file__, "--unpack", str(target), str(jar_cache), *map(str, parts)],
                       check=True)
        extras = ",".join(manifest["extras"])
        print(f"installing the suite and its wheels ({extras}) with pip --no-index")
        subprocess.run([*pip, "--find-links", str(target / ".bundle" / "wheels"), "-e", f"{target}[{extras}]"],
                       check=True)
        shutil.rmtree(target / ".bundle" / "wheels")
    except (subprocess.CalledProcessError, OSError, EOFError) as err:
        if created:
            shutil.rmtree(target, ignore_errors=True)
        else:
            for child in target.iterdir():
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        fail(f"install failed ({err}); nothing is left in {target}")
    java = "the bundled Java runtime" if (target / "jre").is_dir() else "Java 17 or 21 (set JAVA_HOME)"
    print(f"installed in {target}, with {java}; next:\n  cd {target} && .venv/bin/python -m harness doctor\n"
          f"  .venv/bin/python -m harness bench --preset gpu-check")


if __name__ == "__main__":
    main(sys.argv[1:])
