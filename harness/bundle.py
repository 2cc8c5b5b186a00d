"""An offline bundle: everything a GPU host without network needs to install and run the suite.

``python -m harness bundle OUT`` writes, into ``OUT.partial`` renamed to OUT when complete:

* ``prepbench.tar.zst`` (or its parts ``prepbench.tar.zst.000``, ``.001`` ... with ``--split``): one tar,
  compressed once with zstd's long window, holding the suite's source (the committed tree), wheels for every
  pinned dependency of the target Python, the RAPIDS and Comet jars and, with ``--minimal``, a Java runtime.
  Jars inside are stored uncompressed: zstd over stored classes is about half the size of deflated jars;
* ``MANIFEST.json``: each part's size, SHA-256 and (about) what it holds, and what was removed and why;
* ``install.sh`` and ``install.py`` (standard library only), and ``bootstrap/``, the zstandard wheel the
  installer unpacks the payload with; ``gpu_host.py``, what each transfer's command runs on a GPU host;
  ``SHA256SUMS`` over every file.

``--host-packages`` leaves numpy, pandas, pyarrow, jinja2 and grpcio (``HOST_PACKAGES``) to the host's own, in
the ranges stated there, which the installer checks.

``--gpu-arch sm_90`` keeps only the installed Spark's shim in the plugin jar and only that architecture's
device code in libcudf (``harness/fatbin.py``). ``--minimal`` also drops Spark's jars that no engine of the
suite loads (``UNUSED_SPARK_JARS``), zeroes native libraries' symbol tables, drops Comet's libraries for other
platforms, and adds a ``jlink`` Java runtime of ``JAVA_MODULES``, and leaves out the test tools.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
import zipfile
from base64 import urlsafe_b64encode
from pathlib import Path

from . import REPO_ROOT, HarnessError, fatbin, jars, versions

PAYLOAD = "prepbench.tar.zst"
MANIFEST = "MANIFEST.json"
ZSTD_LEVEL = 12
ZSTD_WINDOW_LOG = 31  # --long=31: the zeroed device code and repeated classes are far apart in the stream

# glibc 2.28 or newer is what the RAPIDS plugin needs, so wheels up to manylinux_2_28 fit any host it runs on.
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64")

# PySpark's jars that no engine of the suite loads in local mode or on a standalone cluster, and why.
UNUSED_SPARK_JARS = {
    r"rocksdbjni-": "RocksDB: the disk-backed UI store and the streaming state store, neither used",
    r"(hive-|spark-hive|libthrift|libfb303|jdo-api|javax\.jdo|datanucleus-|derby-|bonecp-|HikariCP|"
    r"antlr-runtime-3|ST4-|stringtemplate|super-csv|transaction-api|javolution|jpam|opencsv)":
        "Hive support and its metastore (the suite uses Spark's in-memory catalog)",
    r"(kubernetes-|spark-kubernetes|okhttp|okio|logging-interceptor|zjsonpatch|snakeyaml-engine|generex|automaton)":
        "the Kubernetes resource manager",
    r"(spark-yarn|hadoop-yarn)": "the YARN resource manager",
    r"(curator-|zookeeper)": "ZooKeeper recovery of a standalone master",
    r"(scala-compiler|spark-repl|jline)": "the Scala shell (PySpark does not use it)",
    r"netty-.*(osx|aarch_64|windows|riscv)": "Netty's native transports for other platforms",
}

# The Java runtime jlink builds with --minimal: java.se, because Spark and Hadoop reach most of the SE API and
# some of it only by reflection (which jdeps does not see), and the JDK modules they use: Unsafe (Spark,
# Netty, Arrow), elliptic-curve TLS, JVM metrics, Hadoop's login module, zip file systems, DNS lookups, and
# the vector API (Spark 4.1 starts every JVM with --add-modules=jdk.incubator.vector).
JAVA_MODULES = ("java.se", "jdk.unsupported", "jdk.crypto.ec", "jdk.management", "jdk.security.auth", "jdk.zipfs",
                "jdk.naming.dns", "jdk.net", "jdk.incubator.vector")

# What a GPU host's Python usually has already (a PyTorch environment): with --host-packages the bundle leaves
# their wheels out and the installer checks the host's versions against these ranges, which the suite and
# PySpark 4.1.3 work with (PySpark's own minimums; pandas below 3, which PySpark 4.1 does not support; pyarrow
# from 15, for the compute functions the data generator uses; grpcio from 1.67, Spark Connect's minimum).
HOST_PACKAGES = {"numpy": ((1, 26), (3,)), "pandas": ((2, 2), (3,)), "pyarrow": ((15,), (27,)),
                 "jinja2": ((3, 1), (4,)), "grpcio": ((1, 67), (2,))}

OTHER_PLATFORM_LIBRARIES = re.compile(r"(^|/)(linux/aarch64|darwin|osx|macos|windows)[^/]*/")


def requirements(minimal: bool) -> list[str]:
    """The pinned dependencies the bundle carries: the suite's, the Dask engine's, and the tests' unless minimal."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    return [*project["dependencies"], *extras["dataframe"], *([] if minimal else extras["test"])]


def build(output: Path, python_version: str, platforms=PLATFORMS, gpu_archs: tuple[str, ...] | None = None,
          minimal: bool = False, split_bytes: int | None = None, level: int = ZSTD_LEVEL, progress=print,
          host_packages: tuple[str, ...] = ()) -> Path:
    output = Path(output)
    if output.exists():
        raise HarnessError(f"{output} exists: remove it or choose another directory")
    if split_bytes is not None and split_bytes < 1 << 20:
        raise HarnessError("--split: parts of at least 1M, e.g. --split 48M")
    partial = output.with_name(output.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    staging = partial / "payload"
    staging.mkdir(parents=True)
    removed: dict = {}
    try:
        _source(staging / "src", progress)
        removed["spark_jars"] = _wheels(staging / "wheels", python_version, platforms, minimal, progress)
        removed["host_packages"] = _leave_to_host(staging / "wheels", host_packages, progress)
        removed.update(_jars(staging / "jars", gpu_archs, minimal, progress))
        if minimal:
            removed["java_runtime"] = _java_runtime(staging / "jre", progress)
        contents = {path.name: _tree_bytes(path) for path in sorted(staging.iterdir())}
        (staging / "BUNDLE.json").write_text(json.dumps({"removed": removed, "contents_bytes": contents}, indent=1))
        members = _archive(staging, partial / PAYLOAD, level, progress)
        shutil.rmtree(staging)
        parts = _split(partial / PAYLOAD, split_bytes, members)
        _bootstrap(partial / "bootstrap", python_version, platforms, progress)
        for name in ("install.sh", "install.py", "gpu_host.py"):
            shutil.copy2(Path(__file__).with_name("bundle_install") / name, partial / name)
        (partial / "install.sh").chmod(0o755)
        manifest = {"format": 1, "python_version": python_version, "gpu_archs": list(gpu_archs or []) or "all",
                    "minimal": minimal, "extras": ["dataframe"] + ([] if minimal else ["test"]),
                    "spark": versions.pairing().spark, "parts": parts, "contents_bytes": contents, "removed": removed,
                    "host_packages": {name: [list(HOST_PACKAGES[name][0]), list(HOST_PACKAGES[name][1])]
                                      for name in host_packages}}
        (partial / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
        _checksums(partial)
        os.rename(partial, output)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    total = sum(f.stat().st_size for f in output.rglob("*") if f.is_file())
    progress(f"bundle ready: {output} ({total / 2**20:.0f} MiB in {len(parts)} part(s) of the payload, the "
             f"largest {max(p['bytes'] for p in parts) / 2**20:.1f} MiB); on the offline host run "
             f"{output.name}/install.sh TARGET_DIR")
    return output


def _run(command: list[str], what: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise HarnessError(f"could not {what}:\n{done.stderr[-3000:]}")


def _tree_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else path.stat().st_size


def _source(target: Path, progress) -> None:
    progress("source: the committed tree (git archive HEAD)")
    target.mkdir()
    archive = target.with_suffix(".tar")
    _run(["git", "-C", str(REPO_ROOT), "archive", "--format=tar", "-o", str(archive), "HEAD"],
         "archive the source (is this a git checkout with a commit?)")
    with tarfile.open(archive) as tar:
        tar.extractall(target, filter="data")
    archive.unlink()


def _wheels(target: Path, python_version: str, platforms, minimal: bool, progress) -> dict:
    """Every pinned wheel; PySpark's is built here (PyPI ships it as source) with its jars stored uncompressed
    and, if minimal, without the jars the suite never loads. Returns what was dropped."""
    target.mkdir()
    pip = [sys.executable, "-m", "pip"]
    spark = [r for r in requirements(minimal) if r.startswith("pyspark")]
    others = [r for r in requirements(minimal) if not r.startswith("pyspark")]
    progress(f"wheels: building {spark[0]}, then downloading the rest for Python {python_version} on {platforms[0]}")
    def build_and_repack(into: Path) -> dict:
        built = into / "built"
        _run([*pip, "wheel", "--quiet", "--no-deps", "-w", str(built), *spark], f"build a wheel of {spark[0]}")
        wheel = next(built.glob("pyspark-*.whl"))
        found = _repack_spark_wheel(wheel, into / wheel.name, minimal)
        shutil.rmtree(built)
        return found

    dropped = _cached(f"{spark[0]}-minimal={minimal}", target, build_and_repack, progress)
    tags = [arg for platform in platforms for arg in ("--platform", platform)]
    _run([*pip, "download", "--quiet", "--only-binary=:all:", "--implementation", "cp", "--python-version",
          python_version, *tags, "-d", str(target), *others, "py4j==0.10.9.9", "setuptools>=68", "wheel"],
         "download the wheels (is PyPI reachable?)")
    if dropped:
        progress(f"wheels: PySpark without {len(dropped)} jars ({sum(dropped.values()) / 2**20:.0f} MiB) no engine loads")
    return dropped


def _leave_to_host(wheels: Path, names: tuple[str, ...], progress) -> dict[str, int]:
    """Take the wheels of the packages the host brings out of the bundle; returns their sizes by file."""
    unknown = [n for n in names if n not in HOST_PACKAGES]
    if unknown:
        raise HarnessError(f"--host-packages {','.join(unknown)}: the host may bring {', '.join(HOST_PACKAGES)}")
    left = {}
    for wheel in sorted(wheels.glob("*.whl")):
        if wheel.name.split("-")[0].lower().replace("_", "-") in names:
            left[wheel.name] = wheel.stat().st_size
            wheel.unlink()
    if left:
        progress(f"wheels: left to the host: {', '.join(left)} ({sum(left.values()) / 2**20:.0f} MiB)")
    return left


def _repack_spark_wheel(source: Path, target: Path, minimal: bool) -> dict[str, int]:
    """The wheel with every jar stored (its classes uncompressed) and, if minimal, the unused jars left out;
    its RECORD rewritten to match."""
    dropped, record_lines = {}, []
    with zipfile.ZipFile(source) as wheel, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as out:
        record_name = next(n for n in wheel.namelist() if n.endswith(".dist-info/RECORD"))
        for info in wheel.infolist():
            name = info.filename
            if name == record_name:
                continue
            data = wheel.read(info)
            if name.startswith("pyspark/jars/") and name.endswith(".jar"):
                jar = name.rsplit("/", 1)[1]
                if minimal and any(re.match(pattern, jar) for pattern in UNUSED_SPARK_JARS):
                    dropped[jar] = len(data)
                    continue
                data, _ = _stored_jar(data)
                out.writestr(_entry(info), data, zipfile.ZIP_STORED)
            else:
                out.writestr(_entry(info), data)
            digest = urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record_lines.append(f"{name},sha256={digest},{len(data)}")
        out.writestr(record_name, "\n".join([*record_lines, f"{record_name},,"]) + "\n")
    return dropped


def _entry(info: zipfile.ZipInfo) -> zipfile.ZipInfo:
    entry = zipfile.ZipInfo(info.filename, info.date_time)
    entry.external_attr = info.external_attr
    return entry


def _stored_jar(data: bytes, drop=lambda name: False, strip_symbols: bool = False) -> tuple[bytes, int]:
    """A jar (as bytes) rewritten with every entry stored, leaving out the entries `drop` names and, with
    `strip_symbols`, its native libraries' symbol tables zeroed; returns it and the bytes zeroed."""
    out, zeroed = io.BytesIO(), 0
    with zipfile.ZipFile(io.BytesIO(data)) as jar, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as stored:
        for info in jar.infolist():
            if drop(info.filename):
                continue
            content = jar.read(info)
            if strip_symbols and info.filename.endswith(".so"):
                content = bytearray(content)
                zeroed += fatbin.zero_symbol_tables(content)
            stored.writestr(_entry(info), bytes(content), zipfile.ZIP_STORED)
    return out.getvalue(), zeroed


def _jars(target: Path, gpu_archs: tuple[str, ...] | None, minimal: bool, progress) -> dict:
    target.mkdir()
    removed = {}
    rapids = jars.find("rapids")
    if gpu_archs or minimal:
        shim = versions.pairing().shim
        progress(f"rapids jar: only the {shim} shim" + (f" and {', '.join(gpu_archs)} device code" if gpu_archs else ""))
        key = f"{rapids.name}-{rapids.stat().st_size}-{shim}-{','.join(sorted(gpu_archs or ['all']))}-{minimal}"
        removed["rapids_jar"] = _cached(key, target, lambda into: fatbin.prune_plugin_jar(
            rapids, into / rapids.name, shim, set(gpu_archs) if gpu_archs else None, strip_symbols=minimal,
            store_all=True, progress=progress), progress)
    else:
        progress(f"rapids jar: {rapids} (whole)")
        _link_or_copy(rapids, target / rapids.name)
    comet = jars.find("comet")
    if minimal:
        with zipfile.ZipFile(comet) as jar:
            others = {i.filename: i.file_size for i in jar.infolist() if OTHER_PLATFORM_LIBRARIES.search(i.filename)}
        progress(f"comet jar: without the native libraries for other platforms ({', '.join(others) or 'none'}), "
                 "symbol tables zeroed")
        stored, zeroed = _stored_jar(comet.read_bytes(), drop=lambda name: name in others, strip_symbols=True)
        (target / comet.name).write_bytes(stored)
        removed["comet_jar"] = {"entries_removed": others, "symbol_bytes_zeroed": zeroed}
    else:
        progress(f"comet jar: {comet} (whole)")
        _link_or_copy(comet, target / comet.name)
    return removed


def _cached(key: str, target: Path, make, progress) -> dict:
    """What `make(folder)` writes into a folder (and the record it returns), made once per key and machine in
    ~/.cache/prepbench/bundle/ and linked into `target`: PySpark's wheel is built from source and the plugin jar
    pruned from 1 GB, minutes each, while their inputs are pinned."""
    code = b"".join(Path(m.__file__).read_bytes() for m in (fatbin, sys.modules[__name__]))  # how they are made
    cache = jars.cache_dir() / "bundle" / hashlib.sha1(key.encode() + code).hexdigest()[:16]
    if not (cache / "record.json").is_file():
        partial = Path(tempfile.mkdtemp(dir=jars.cache_dir(), prefix=".bundle-"))
        try:
            record = make(partial)
            (partial / "record.json").write_text(json.dumps(record))
            cache.parent.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(cache, ignore_errors=True)
            os.replace(partial, cache)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
    else:
        progress(f"reused from {cache}: {key}")
    for made in cache.iterdir():
        if made.name != "record.json":
            _link_or_copy(made, target / made.name)
    return json.loads((cache / "record.json").read_text())


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _java_runtime(target: Path, progress) -> dict:
    """A Java runtime of JAVA_MODULES, built with jlink from this machine's JDK (its jmods/)."""
    home = Path(os.environ.get("JAVA_HOME") or Path(os.path.realpath(shutil.which("java") or "java")).parents[1])
    jlink = home / "bin" / "jlink"
    if not jlink.is_file() or not (home / "jmods").is_dir():
        raise HarnessError(f"--minimal builds a Java runtime with jlink, which needs a full JDK (with jmods/); "
                           f"{home} is not one: set JAVA_HOME to a JDK 17 or 21")
    progress(f"java runtime: jlink {','.join(JAVA_MODULES)} from {home}")
    _run([str(jlink), "--add-modules", ",".join(JAVA_MODULES), "--strip-debug", "--no-man-pages",
          "--no-header-files", "--output", str(target)], "build the Java runtime with jlink")
    release = dict(line.split("=", 1) for line in (target / "release").read_text().splitlines() if "=" in line)
    return {"modules": list(JAVA_MODULES), "from": str(home), "java_version": release.get("JAVA_VERSION", "").strip('"'),
            "bytes": _tree_bytes(target)}


def _archive(staging: Path, target: Path, level: int, progress) -> list[tuple[int, str]]:
    """One tar of the staging tree through zstd; returns (compressed offset, member) for each top member,
    about where its bytes start in the compressed stream."""
    import zstandard

    progress(f"archive: {_tree_bytes(staging) / 2**20:.0f} MiB through zstd -{level} --long={ZSTD_WINDOW_LOG}")
    params = zstandard.ZstdCompressionParameters.from_level(level, window_log=ZSTD_WINDOW_LOG,
                                                            enable_ldm=True, threads=-1, write_checksum=True)
    starts = []
    with open(target, "wb") as raw:
        with zstandard.ZstdCompressor(compression_params=params).stream_writer(raw, closefd=False) as writer:
            with tarfile.open(fileobj=writer, mode="w|") as tar:
                for path in sorted(staging.rglob("*")):
                    relative = path.relative_to(staging)
                    if len(relative.parts) <= 2:
                        starts.append((raw.tell(), str(relative)))
                    tar.add(path, arcname=str(relative), recursive=False)
    return starts


def _split(payload: Path, split_bytes: int | None, starts: list[tuple[int, str]]) -> list[dict]:
    size = payload.stat().st_size
    if not split_bytes or size <= split_bytes:
        return [_part(payload, 0, size, starts)]
    parts = []
    with open(payload, "rb") as source:
        for index, offset in enumerate(range(0, size, split_bytes)):
            path = payload.with_name(f"{payload.name}.{index:03d}")
            path.write_bytes(source.read(split_bytes))
            parts.append(_part(path, offset, min(split_bytes, size - offset), starts))
    payload.unlink()
    return parts


def _part(path: Path, offset: int, size: int, starts: list[tuple[int, str]]) -> dict:
    with open(path, "rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    before = [member for start, member in starts if start <= offset]
    holds = ([before[-1]] if before else []) + [m for start, m in starts if offset < start < offset + size]
    return {"name": path.name, "bytes": size, "sha256": digest, "holds_about": holds}


def _bootstrap(target: Path, python_version: str, platforms, progress) -> None:
    """The zstandard wheel the installer needs before anything else is installed."""
    target.mkdir()
    pin = next(r for r in tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
               if r.startswith("zstandard"))
    tags = [arg for platform in platforms for arg in ("--platform", platform)]
    _run([sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:", "--no-deps", "--implementation",
          "cp", "--python-version", python_version, *tags, "-d", str(target), pin], f"download the {pin} wheel")
    progress(f"bootstrap: {', '.join(p.name for p in target.iterdir())}")


def _checksums(root: Path) -> None:
    lines = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        with open(path, "rb") as f:
            lines.append(f"{hashlib.file_digest(f, 'sha256').hexdigest()}  {path.relative_to(root)}\n")
    (root / "SHA256SUMS").write_text("".join(lines))


def parse_size(text: str) -> int:
    m = re.fullmatch(r"(\d+)\s*([KMG]?)i?B?", text.strip(), re.IGNORECASE)
    if not m:
        raise HarnessError(f"--split {text}: write a size such as 48M, 512K or 2G")
    return int(m.group(1)) * {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[m.group(2).upper()]


def add_arguments(parser) -> None:
    parser.add_argument("output", type=Path, help="directory to create")
    parser.add_argument("--python-version", default=f"{sys.version_info.major}.{sys.version_info.minor}",
                        help="Python of the offline host, e.g. 3.12 (default: this one's)")
    parser.add_argument("--platform", action="append", help="pip platform tag(s) of the offline host "
                        f"(default: {', '.join(PLATFORMS)})")
    parser.add_argument("--gpu-arch", help="keep only these GPUs' device code, e.g. sm_90 (H100, H200) or "
                        "sm_80,sm_90; also keeps only the installed Spark's shim (default: every architecture)")
    parser.add_argument("--minimal", action="store_true", help="without the Spark jars no engine loads and the test "
                        "tools, with a jlinked Java runtime and native symbol tables zeroed")
    parser.add_argument("--split", metavar="SIZE", help="cut the payload into parts of at most SIZE, e.g. 48M (a call carries the part, the kit and the working tree: 64 MiB in all)")
    parser.add_argument("--host-packages", nargs="?", const=",".join(HOST_PACKAGES), default="", metavar="LIST",
                        help=f"leave these wheels out, for the host's own (default: {','.join(HOST_PACKAGES)}); the "
                        "installer checks their versions against the ranges the suite and PySpark work with")
    parser.add_argument("--level", type=int, default=ZSTD_LEVEL, choices=range(1, 23), metavar="1-22",
                        help=f"zstd level: higher is smaller and slower (default {ZSTD_LEVEL})")


def build_from_args(args) -> Path:
    archs = tuple(a.strip() for a in args.gpu_arch.split(",") if a.strip()) if args.gpu_arch else None
    for arch in archs or ():
        if not re.fullmatch(r"sm_\d{2,3}[af]?", arch):
            raise HarnessError(f"--gpu-arch {arch}: write an architecture as sm_90 (H100, H200), sm_80 (A100), "
                               "sm_89 (L4, L40S), sm_100 (B200)")
    return build(args.output, args.python_version, tuple(args.platform or PLATFORMS), archs, args.minimal,
                 parse_size(args.split) if args.split else None, args.level,
                 host_packages=tuple(n.strip().lower() for n in args.host_packages.split(",") if n.strip()))
