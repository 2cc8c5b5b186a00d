"""Installs prepbench from an offline bundle (see harness/bundle.py); the Python standard library only.

0. Optionally, as parts arrive one transfer at a time: ``install.sh --stage DIR PART...`` checks each part
   against MANIFEST.json and moves it into the staging folder DIR, printing ``k/N`` and its checksum; a part
   that matches none is refused in one line. ``install.sh TARGET --from DIR`` then installs from there.
1. Verify: every file listed in SHA256SUMS beside this script, and each payload part of MANIFEST.json, found
   by name or, among the files given on the command line, by its checksum (so parts may come in any order,
   from anywhere). A bundle built with --host-packages leaves numpy, pandas, pyarrow, jinja2 and grpcio to
   the host: their versions are checked against the ranges MANIFEST.json states. Nothing is written before
   everything checks out.
2. Create TARGET_DIR/.venv (seeing the host's packages, where the bundle relies on them; without pip where
   a venv inside a venv has no ensurepip) and install the bootstrap zstandard wheel into it, --no-index.
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


def stage(staging: Path, given: list[Path]) -> None:
    """Check each part as it arrives and move it into the staging folder: `k/N name sha256` for one that belongs
    to this bundle, one line and exit status 1 for one that does not (damaged on the way: send it again). Parts
    may arrive in any order, one call at a time."""
    manifest = json.loads((HERE / "MANIFEST.json").read_text())
    by_digest = {p["sha256"]: p for p in manifest["parts"]}
    staging.mkdir(parents=True, exist_ok=True)
    refused = []
    for path in given:
        if not path.is_file():
            refused.append(f"{path}: no such file")
            continue
        digest = sha256(path)
        part = by_digest.get(digest)
        if part is None:
            refused.append(f"{path.name}: its SHA-256 {digest[:16]}... matches no part of this bundle (damaged on the way?): "
                           "send it again")
            continue
        shutil.move(str(path), str(staging / part["name"]))
        have = sum((staging / p["name"]).is_file() for p in manifest["parts"])
        print(f"{have}/{len(manifest['parts'])} {part['name']} sha256 {digest} staged in {staging}")
    missing = [p["name"] for p in manifest["parts"] if not (staging / p["name"]).is_file()]
    print(f"all {len(manifest['parts'])} parts staged: install with install.sh TARGET --from {staging}" if not missing
          else f"waiting for {len(missing)} part(s): {', '.join(missing)}")
    if refused:
        fail("refused: " + "; ".join(refused))


def host_packages(python: str, wanted: dict) -> tuple[dict, list[str]]:
    """The versions of the packages the bundle left to the host, and what is wrong with them (missing, or
    outside the range the suite and PySpark work with)."""
    names = json.dumps(sorted(wanted))
    code = ("import importlib.metadata as m, json\nfound = {}\nfor n in json.loads(%r):\n    try:\n"
            "        found[n] = m.version(n)\n    except m.PackageNotFoundError:\n        found[n] = None\n"
            "print(json.dumps(found))" % names)
    done = subprocess.run([python, "-c", code], capture_output=True, text=True)
    found = json.loads(done.stdout) if done.returncode == 0 else {n: None for n in wanted}
    problems = []
    for name, (low, high) in wanted.items():
        version = found.get(name)
        if version is None:
            problems.append(f"{name} is not installed on this host")
        elif not low <= _release(version) < high:
            problems.append(f"{name} {version} is outside {'.'.join(map(str, low))} to below "
                            f"{'.'.join(map(str, high))}")
    return found, problems


def _release(version: str) -> tuple:
    parts = []
    for piece in version.split(".")[:3]:
        digits = "".join(c for c in piece if c.isdigit()) or "0"
        parts.append(int(digits))
    return tuple(parts)


def make_venv(target: Path, host_site: bool) -> Path:
    """TARGET/.venv, seeing this Python's own site-packages when the bundle relies on the host's packages.

    This Python may itself be a venv (a GPU host's /opt/torch/.venv): a venv made from it is based on the
    interpreter beneath, whose "system site packages" are not the ones holding numpy or torch, so the new venv
    is pointed at this one's site-packages with a .pth file instead. A venv inside a venv may have no ensurepip:
    then it is made without pip and uses this Python's pip, which that .pth file makes visible."""
    import site

    venv = target / ".venv"
    command = [sys.executable, "-m", "venv", str(venv)]
    if subprocess.run(command, capture_output=True, text=True).returncode != 0:
        shutil.rmtree(venv, ignore_errors=True)
        print("python3 -m venv failed here (no ensurepip?): a venv without pip, using this Python's pip")
        subprocess.run([*command[:3], "--without-pip", *command[3:]], check=True)
        host_site = True
    if host_site:
        inner = next((venv / "lib").glob("python*/site-packages"))
        (inner / "prepbench-host.pth").write_text("".join(f"{p}\n" for p in site.getsitepackages()))
    return venv / "bin" / "python"


def main(argv: list[str]) -> None:
    if len(argv) >= 2 and argv[0] == "--unpack":
        target, jar_cache, *parts = argv[1:]
        unpack([Path(p) for p in parts], Path(target), Path(jar_cache))
        return
    if len(argv) >= 2 and argv[0] == "--stage":
        stage(Path(argv[1]), [Path(p) for p in argv[2:]])
        return
    if not argv or argv[0] in ("-h", "--help"):
        fail("usage: install.sh TARGET_DIR [--from STAGING_DIR] [PART ...]  |  install.sh --stage STAGING_DIR PART ...")
    if sys.version_info < (3, 11):
        fail(f"python3 is {sys.version.split()[0]}: the suite needs Python 3.11 or newer")
    target = Path(argv[0]).resolve()
    given = [Path(p) for p in argv[1:]]
    if len(given) >= 2 and str(given[0]) == "--from":
        given = sorted(given[1].iterdir()) + given[2:]
    manifest = json.loads((HERE / "MANIFEST.json").read_text())
    verify_files()
    parts = verified_parts(manifest, given)
    if target.exists() and any(target.iterdir()):
        fail(f"{target} is not empty: choose a new directory")
    wanted = {name: (tuple(low), tuple(high)) for name, (low, high) in (manifest.get("host_packages") or {}).items()}
    if wanted:  # packages this bundle leaves to the host: checked before anything is written
        found, problems = host_packages(sys.executable, wanted)
        if problems:
            fail("this bundle uses the host's own " + ", ".join(wanted) + ", but " + "; ".join(problems) +
                 ": install those into this Python, or build the bundle without --host-packages")
        print("reused from the host: " + ", ".join(f"{n} {v}" for n, v in sorted(found.items())))
    print(f"bundle verified ({len(parts)} part(s)); installing into {target}")
    created = not target.exists()
    target.mkdir(parents=True, exist_ok=True)
    try:
        venv_python = make_venv(target, bool(wanted))
        pip = [str(venv_python), "-m", "pip", "install", "--quiet", "--no-index"]
        subprocess.run([*pip, "--find-links", str(HERE / "bootstrap"), "zstandard"], check=True)
        jar_cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "prepbench" / "jars"
        jar_cache.mkdir(parents=True, exist_ok=True)
        print("unpacking the payload")
        subprocess.run([str(venv_python), __file__, "--unpack", str(target), str(jar_cache), *map(str, parts)],
                       check=True)
        wheels = sorted((target / ".bundle" / "wheels").glob("*.whl"))
        extras = ",".join(manifest["extras"])
        if wanted:  # the pins name exact versions of what the host brings: install what was brought, as it is
            print(f"installing the suite and the {len(wheels)} wheels brought with pip --no-index --no-deps")
            subprocess.run([*pip, "--no-deps", *map(str, wheels)], check=True)
            subprocess.run([*pip, "--no-deps", "--find-links", str(target / ".bundle" / "wheels"), "-e", str(target)],
                           check=True)  # its build needs setuptools, from the wheels brought
        else:
            print(f"installing the suite and its wheels ({extras}) with pip --no-index")
            subprocess.run([*pip, "--find-links", str(target / ".bundle" / "wheels"), "-e", f"{target}[{extras}]"],
                           check=True)
        print("brought: " + ", ".join(w.name.split("-")[0] + " " + w.name.split("-")[1] for w in wheels))
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
