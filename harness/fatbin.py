"""A plugin jar cut down to one Spark shim and one GPU architecture, for an offline bundle.

Nearly all of the RAPIDS jar is ``amd64/Linux/libcudf.so``, and nearly all of that is its ELF section
``.nv_fatbin``: CUDA fat binaries, each holding device code for every architecture the library supports. A
GPU loads only the entry for its own architecture, so the others can be zeroed in place: every header, size
and offset stays as it is (the loader and the CUDA runtime see the same layout), and the zeroed runs
compress to almost nothing when the bundle is compressed with a long window (zstd ``--long``).

The layout, as the library has it (all little-endian):

* fat binary: u32 magic 0xBA55ED50, u16 version, u16 header size, u64 size of the entries after the header.
* entry: u16 kind (1 PTX, 2 cubin), u16 version, u32 header size, u64 payload size (padded), ..., u32 SM
  number at offset 28, u64 flags at offset 40; the payload follows the entry header. Flag 0x100000 marks an
  architecture-specific target (sm_90a), 0x200000 a family-specific one (sm_100f); 0x2000 marks a compressed
  payload (every entry in the 26.08 library is), which changes nothing here: the payload is zeroed whole.
"""

from __future__ import annotations

import json
import mmap
import os
import re
import struct
import tempfile
import zipfile
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

FATBIN_MAGIC = 0xBA55ED50
LIBRARY = "amd64/Linux/libcudf.so"
MANIFEST = "prepbench-pruned.json"
_SHIM_DIR = re.compile(r"(spark\d{3}[^/]*)/")
_KINDS = {1: "compute", 2: "sm"}
_SUFFIXES = ((0x100000, "a"), (0x200000, "f"))
_CHUNK = 16 << 20


@dataclass
class PruneReport:
    """What prune kept and zeroed, per architecture label: payload bytes and entry counts."""

    fat_binaries: int
    kept_bytes: dict[str, int]
    zeroed_bytes: dict[str, int]
    kept_entries: dict[str, int]
    zeroed_entries: dict[str, int]


def _sections(data) -> dict[str, tuple[int, int, int]]:
    """Section name -> (flags, file offset, size), from an ELF64 little-endian section header table."""
    if len(data) < 64 or bytes(data[:6]) != b"\x7fELF\x02\x01":
        raise ValueError("not a 64-bit little-endian ELF file")
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    if shentsize < 64 or shstrndx >= shnum or shoff + shnum * shentsize > len(data):
        raise ValueError("ELF section header table is missing or truncated")
    headers = [struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize) for i in range(shnum)]
    _name, _kind, _flags, _addr, names_at, names_size = headers[shstrndx]
    names = bytes(data[names_at:names_at + names_size])
    sections = {}
    for name, kind, flags, _addr, offset, size in headers:
        if name >= len(names) or (kind != 8 and offset + size > len(data)):  # 8: SHT_NOBITS (.bss), not in the file
            raise ValueError("ELF section header is malformed")
        sections[names[name:names.find(b"\0", name)].decode()] = (flags, offset, size)
    return sections


def _entries(data):
    """Every fat binary entry in .nv_fatbin: (index of its fat binary, label, payload offset, payload size)."""
    if ".nv_fatbin" not in (sections := _sections(data)):
        raise ValueError("no .nv_fatbin section: not a CUDA library")
    _flags, pos, section_size = sections[".nv_fatbin"]
    end, index = pos + section_size, 0
    while pos < end:
        if data[pos] == 0:  # padding between fat binaries, from the linker's alignment
            pos += 1
            continue
        if pos + 16 > end:
            raise ValueError(f"malformed fat binary header at file offset {pos:#x}")
        magic, _version, header_size, size = struct.unpack_from("<IHHQ", data, pos)
        body, stop = pos + header_size, pos + header_size + size
        if magic != FATBIN_MAGIC or header_size < 16 or stop > end:
            raise ValueError(f"malformed fat binary header at file offset {pos:#x}")
        while body < stop:
            if body + 48 > stop:
                raise ValueError(f"malformed fat binary entry at file offset {body:#x}")
            kind, _version, entry_size, payload = struct.unpack_from("<HHIQ", data, body)
            if kind not in _KINDS or entry_size < 48 or body + entry_size + payload > stop:
                raise ValueError(f"malformed fat binary entry at file offset {body:#x}")
            sm, = struct.unpack_from("<I", data, body + 28)
            flags, = struct.unpack_from("<Q", data, body + 40)
            label = f"{_KINDS[kind]}_{sm}" + "".join(suffix for bit, suffix in _SUFFIXES if flags & bit)
            yield index, label, body + entry_size, payload
            body += entry_size + payload
        pos, index = stop, index + 1


def architectures(data) -> dict[str, int]:
    """Payload bytes per architecture label (sm_90, sm_90a, compute_120 for PTX, ...) over all fat binaries."""
    sizes = Counter()
    for _index, label, _offset, size in _entries(data):
        sizes[label] += size
    return dict(sorted(sizes.items()))


def _base(label: str) -> str:
    return label.rstrip("af")


def prune(data, keep: set[str]) -> PruneReport:
    """Zero, in place, the payload of every entry whose architecture is not kept; headers and offsets stay.

    ``keep`` names labels as architectures() gives them; a plain name keeps its variants too ("sm_90" keeps
    sm_90 and sm_90a cubins), a suffixed one only itself. PTX is kept only when named ("compute_120"): an
    offline bundle targets a GPU whose cubins are present, and PTX can be compiled only for its own or a newer
    architecture, so keep={"sm_90"} zeroes every PTX. Refused, before anything is written: a name present in
    no fat binary (a typo), and a keep set that leaves some fat binary with no code at all (its kernels
    could then load on no GPU).
    """
    entries = list(_entries(data))
    present = {label for _index, label, _offset, _size in entries}
    unknown = set(keep) - present - {_base(label) for label in present}
    if unknown:
        raise ValueError(f"not in this library: {', '.join(sorted(unknown))}; present: {', '.join(sorted(present))}")
    kept = [label in keep or _base(label) in keep for _index, label, _offset, _size in entries]
    fat_binaries = {entry[0] for entry in entries}
    bare = fat_binaries - {entry[0] for entry, k in zip(entries, kept) if k}
    if bare:
        example = sorted({label for index, label, _offset, _size in entries if index == min(bare)})
        raise ValueError(f"keep={sorted(keep)} leaves {len(bare)} of {len(fat_binaries)} fat binaries with no code "
                         f"(one has only {', '.join(example)})")
    sizes, counts = {True: Counter(), False: Counter()}, {True: Counter(), False: Counter()}
    for (_index, label, offset, size), k in zip(entries, kept):
        if not k:
            data[offset:offset + size] = bytes(size)
        sizes[k][label] += size
        counts[k][label] += 1
    tidy = [dict(sorted(c.items())) for c in (sizes[True], sizes[False], counts[True], counts[False])]
    return PruneReport(len(fat_binaries), *tidy)


def zero_symbol_tables(data) -> int:
    """Zero the contents of .symtab and .strtab in place (headers unchanged); returns the bytes zeroed.

    Safe for loading: neither section is allocated (mapped), and the dynamic loader, dlsym and JNI resolve
    names through .dynsym/.dynstr, which stay. The cost: native backtraces (gdb, perf, a JVM crash log) name
    only exported functions; internal ones show as bare addresses. In libcudf.so these are about 114 MB.
    """
    zeroed = 0
    for name, (flags, offset, size) in _sections(data).items():
        if name in (".symtab", ".strtab"):
            if flags & 0x2:  # SHF_ALLOC: mapped at run time, so not ours to clear
                raise ValueError(f"{name} is loaded at run time; refusing to zero it")
            data[offset:offset + size] = bytes(size)
            zeroed += size
    return zeroed


def _copy(source, target, size: int) -> None:
    while size > 0:
        chunk = source.read(min(_CHUNK, size))
        if not chunk:
            raise ValueError("unexpected end of a jar entry")
        target.write(chunk)
        size -= len(chunk)


def _shim_of(name: str) -> str | None:
    return m.group(1) if (m := _SHIM_DIR.match(name)) else None


def prune_plugin_jar(src: Path, dst: Path, shim: str, keep_archs: set[str] | None, strip_symbols: bool = True,
                     store_all: bool = False, progress=print) -> dict:
    """Write ``dst``: ``src`` with only one Spark shim and, if ``keep_archs`` is given, one GPU architecture.

    Kept: the top-level entries, spark-shared/, and ``shim``/ (e.g. "spark413"); libcudf.so is pruned to
    ``keep_archs`` (None: left whole) and its symbol tables zeroed if ``strip_symbols``. Native libraries are
    stored uncompressed, so that one outer zstd pass over the bundle sees (and squeezes) the zeroed runs;
    everything else is deflated as in the source, or stored too with ``store_all`` (zstd over stored classes
    is about half the size of the deflated jar). The library is worked on in a temporary file beside
    ``dst`` through mmap, never held in memory. The jar gets a top-level ``prepbench-pruned.json`` saying what
    was removed; the same record is returned, with the new jar's size.
    """
    src, dst = Path(src), Path(dst)
    say = progress or (lambda _line: None)
    with zipfile.ZipFile(src) as jar:
        infos = jar.infolist()
        if MANIFEST in jar.namelist():
            raise ValueError(f"{src.name} is already pruned (it has {MANIFEST}): start from the original jar")
        shims = sorted({s for i in infos if (s := _shim_of(i.filename))})
        if shim not in shims:
            raise ValueError(f"{src.name} has no {shim}/ shim directory; it has: {', '.join(shims)}")
        kept, removed = [], {}
        for info in infos:
            if _shim_of(info.filename) in (None, shim):
                kept.append(info)
                continue
            counts = removed.setdefault(_shim_of(info.filename), {"entries": 0, "bytes": 0, "compressed_bytes": 0})
            counts["entries"] += 1
            counts["bytes"] += info.file_size
            counts["compressed_bytes"] += info.compress_size
        library = next((i for i in kept if i.filename == LIBRARY), None)
        if library is None:
            raise ValueError(f"{src.name} has no {LIBRARY}: not a RAPIDS plugin jar")
        record = {
            "source": src.name, "source_bytes": src.stat().st_size, "shim": shim,
            "keep_archs": sorted(keep_archs) if keep_archs is not None else None,
            "entries_kept": len(kept), "entries_removed": sum(c["entries"] for c in removed.values()),
            "shims_removed": dict(sorted(removed.items())), "library": LIBRARY, "library_bytes": library.file_size,
            "architectures": None, "symbol_bytes_zeroed": 0,
        }
        fd, lib_path = tempfile.mkstemp(dir=dst.parent, prefix=".libcudf-", suffix=".so")
        fd_jar, jar_path = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}-", suffix=".partial")
        os.close(fd_jar)
        try:
            with os.fdopen(fd, "r+b") as lib:
                say(f"extracting {LIBRARY} ({library.file_size / 1e9:.2f} GB)")
                with jar.open(library) as source:
                    _copy(source, lib, library.file_size)
                lib.flush()
                with mmap.mmap(lib.fileno(), 0) as image:
                    if keep_archs is not None:
                        present = ", ".join(architectures(image))
                        say(f"zeroing device code except {sorted(keep_archs)}; present: {present}")
                        record["architectures"] = asdict(prune(image, set(keep_archs)))
                    if strip_symbols:
                        record["symbol_bytes_zeroed"] = zero_symbol_tables(image)
                    image.flush()
                say(f"writing {dst.name}: {len(kept)} entries kept, {len(removed)} other shims removed")
                with zipfile.ZipFile(jar_path, "w", allowZip64=True) as out:
                    for info in kept:
                        entry = zipfile.ZipInfo(info.filename, info.date_time)
                        entry.external_attr, entry.file_size = info.external_attr, info.file_size
                        stored = store_all or info.filename.endswith(".so")
                        entry.compress_type = zipfile.ZIP_STORED if stored else info.compress_type
                        if info.is_dir():
                            out.writestr(entry, b"")
                            continue
                        with out.open(entry, "w") as target:
                            if info is library:
                                lib.seek(0)
                                _copy(lib, target, info.file_size)
                            else:
                                with jar.open(info) as source:
                                    _copy(source, target, info.file_size)
                    out.writestr(MANIFEST, json.dumps(record, indent=1) + "\n", zipfile.ZIP_DEFLATED)
            os.chmod(jar_path, src.stat().st_mode & 0o777)  # mkstemp's file is private to its owner
            os.replace(jar_path, dst)
        finally:
            os.unlink(lib_path)
            if os.path.exists(jar_path):
                os.unlink(jar_path)
    record["jar_bytes"] = dst.stat().st_size
    say(f"{dst.name}: {record['jar_bytes'] / 1e6:.0f} MB (from {record['source_bytes'] / 1e6:.0f} MB)")
    return record
