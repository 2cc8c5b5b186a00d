"""fatbin: device code pruning on tiny synthetic ELF files and jars (the real 1 GB jar is not needed)."""

import json
import struct
import zipfile

import pytest

from harness import fatbin

PTX, CUBIN = 1, 2
COMPRESSED, SPECIFIC = 0x2011, 0x100000  # 64-bit | Linux | compressed; architecture-specific (sm_90a)

# Three fat binaries; every payload byte names its entry, so a misplaced zero shows.
FAT_BINARIES = [
    [(CUBIN, 80, 0, b"\x80" * 40), (CUBIN, 90, SPECIFIC, b"\x9a" * 32), (PTX, 120, 0, b".target sm_120\n\x01")],
    [(CUBIN, 80, 0, b"\x81" * 24), (CUBIN, 90, 0, b"\x90" * 16), (CUBIN, 90, SPECIFIC, b"\x9b" * 8)],
    [(CUBIN, 90, 0, b"\x91" * 48), (PTX, 120, 0, b"\x12" * 24)],
]
SECTIONS = (  # name, type, flags (SHF_ALLOC = 2), contents
    (".nv_fatbin", 1, 2, None),
    (".symtab", 2, 0, b"\x5e" * 48),
    (".strtab", 3, 0, b"\0internal_function\0"),
    (".dynsym", 11, 2, b"\xd5" * 48),
    (".dynstr", 3, 2, b"\0exported_function\0"),
)


def entry(kind, sm, flags, payload):
    header = struct.pack("<HHIQ", kind, 0x101, 64, len(payload)) + bytes(12) + struct.pack("<I", sm)
    return header + bytes(8) + struct.pack("<Q", flags | COMPRESSED) + bytes(16) + payload


def fat_binary(entries):
    body = b"".join(entry(*e) for e in entries)
    return struct.pack("<IHHQ", fatbin.FATBIN_MAGIC, 1, 16, len(body)) + body


def elf(fat_binaries=FAT_BINARIES):
    """A minimal ELF64 shared object: a header, the sections' contents, a section header table.

    Returns the file and, per payload, (offset, bytes)."""
    nv_fatbin, payloads = b"", []
    for entries in fat_binaries:
        start = len(nv_fatbin) + 16
        for e in entries:
            start += 64
            payloads.append((start, e[3]))
            start += len(e[3])
        nv_fatbin += fat_binary(entries) + bytes(8)  # the linker's alignment padding
    names = b"\0" + b"".join(s[0].encode() + b"\0" for s in SECTIONS) + b".shstrtab\0"
    contents = [nv_fatbin if s[3] is None else s[3] for s in SECTIONS] + [names]
    kinds = [(s[1], s[2]) for s in SECTIONS] + [(3, 0)]
    body, headers, name_at = b"", [bytes(64)], 1
    for data, (kind, flags) in zip(contents, kinds):
        headers.append(struct.pack("<IIQQQQIIQQ", name_at, kind, flags, 0, 64 + len(body), len(data), 0, 0, 8, 0))
        name_at = names.index(b"\0", name_at) + 1
        body += data
    shoff = 64 + len(body)
    header = struct.pack("<16sHHIQQQIHHHHHH", b"\x7fELF\x02\x01\x01", 3, 62, 1, 0, 0, shoff, 0, 64, 56, 0, 64,
                         len(headers), len(headers) - 1)
    # .nv_fatbin comes first, right after the 64-byte ELF header
    return header + body + b"".join(headers), [(64 + offset, data) for offset, data in payloads]


def test_architectures_counts_payload_bytes_per_label():
    image, _ = elf()
    assert fatbin.architectures(image) == {"compute_120": 40, "sm_80": 64, "sm_90": 64, "sm_90a": 40}


def test_prune_zeroes_other_architectures_and_nothing_else():
    original, payloads = elf()
    image = bytearray(original)
    report = fatbin.prune(image, {"sm_90"})
    expected = bytearray(original)
    for offset, data in payloads:
        if data[0] not in (0x9A, 0x90, 0x9B, 0x91):
            expected[offset:offset + len(data)] = bytes(len(data))
    assert image == expected
    assert report.fat_binaries == 3
    assert report.kept_bytes == {"sm_90": 64, "sm_90a": 40}
    assert report.zeroed_bytes == {"compute_120": 40, "sm_80": 64}
    assert report.kept_entries == {"sm_90": 2, "sm_90a": 2}
    assert report.zeroed_entries == {"compute_120": 2, "sm_80": 2}
    assert fatbin.architectures(image) == fatbin.architectures(original)  # headers untouched


def test_prune_keeps_ptx_only_when_named():
    image = bytearray(elf()[0])
    report = fatbin.prune(image, {"sm_90", "compute_120"})
    assert report.kept_bytes == {"compute_120": 40, "sm_90": 64, "sm_90a": 40}


def test_prune_refuses_unknown_architecture_and_a_keep_set_leaving_no_code():
    original = elf()[0]
    image = bytearray(original)
    with pytest.raises(ValueError, match=r"not in this library: sm_9; present: compute_120, sm_80, sm_90, sm_90a"):
        fatbin.prune(image, {"sm_9"})
    with pytest.raises(ValueError, match=r"leaves 1 of 3 fat binaries with no code \(one has only compute_120, sm_90"):
        fatbin.prune(image, {"sm_90a"})  # the third has plain sm_90 only
    assert image == original


@pytest.mark.parametrize("damage", ["magic", "size", "entry"])
def test_malformed_fat_binary_refused(damage):
    image, payloads = elf()
    image = bytearray(image)
    start = payloads[0][0] - 64 - 16  # the first fat binary's header
    if damage == "magic":
        image[start] ^= 0xFF
    elif damage == "size":
        image[start + 8:start + 16] = struct.pack("<Q", 1 << 40)
    else:
        image[start + 16 + 8:start + 16 + 16] = struct.pack("<Q", 1 << 20)  # first entry's payload size
    with pytest.raises(ValueError, match="malformed fat binary"):
        fatbin.architectures(image)
    with pytest.raises(ValueError, match="malformed fat binary"):
        fatbin.prune(image, {"sm_90"})


def test_not_a_cuda_library_refused():
    with pytest.raises(ValueError, match="no .nv_fatbin"):
        fatbin.architectures(elf()[0].replace(b".nv_fatbin\0", b".nv_fatbix\0"))
    with pytest.raises(ValueError, match="not a 64-bit"):
        fatbin.prune(bytearray(b"PK\3\4" + bytes(100)), {"sm_90"})


def test_zero_symbol_tables_touches_only_symtab_and_strtab():
    original = elf()[0]
    image = bytearray(original)
    assert fatbin.zero_symbol_tables(image) == 48 + len(b"\0internal_function\0")
    assert b"internal_function" not in image and b"\x5e" * 48 not in image
    assert b"exported_function" in image and b"\xd5" * 48 in image
    changed = [i for i in range(len(image)) if image[i] != original[i]]
    symtab = original.index(b"\x5e" * 48)
    assert min(changed) >= symtab and max(changed) < symtab + 48 + len(b"\0internal_function\0")


def jar(path):
    library = elf()[0]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name in ("META-INF/", "spark350/", "spark413/", "amd64/", "amd64/Linux/"):
            z.writestr(name, b"")
        z.writestr("META-INF/MANIFEST.MF", b"Manifest-Version: 1.0\n")
        z.writestr("com/nvidia/spark/SQLPlugin.class", b"top" * 100)
        z.writestr("spark350/com/nvidia/Shim.class", b"350" * 100)
        z.writestr("spark413/com/nvidia/Shim.class", b"413" * 100)
        z.writestr("spark-shared/com/nvidia/Shared.class", b"shared" * 100)
        z.writestr(fatbin.LIBRARY, library)
    return library


def test_prune_plugin_jar(tmp_path):
    library = jar(tmp_path / "src.jar")
    lines = []
    record = fatbin.prune_plugin_jar(tmp_path / "src.jar", tmp_path / "dst.jar", "spark413", {"sm_90"},
                                     progress=lines.append)
    with zipfile.ZipFile(tmp_path / "dst.jar") as z:
        assert z.namelist() == ["META-INF/", "spark413/", "amd64/", "amd64/Linux/", "META-INF/MANIFEST.MF",
                                "com/nvidia/spark/SQLPlugin.class", "spark413/com/nvidia/Shim.class",
                                "spark-shared/com/nvidia/Shared.class", fatbin.LIBRARY, fatbin.MANIFEST]
        assert z.getinfo(fatbin.LIBRARY).compress_type == zipfile.ZIP_STORED
        assert z.getinfo("spark413/com/nvidia/Shim.class").compress_type == zipfile.ZIP_DEFLATED
        assert z.read("spark413/com/nvidia/Shim.class") == b"413" * 100
        pruned = bytearray(library)
        fatbin.prune(pruned, {"sm_90"})
        fatbin.zero_symbol_tables(pruned)
        assert z.read(fatbin.LIBRARY) == pruned
        manifest = json.loads(z.read(fatbin.MANIFEST))
    removed = manifest["shims_removed"]
    assert list(removed) == ["spark350"] and removed["spark350"]["entries"] == 2 and removed["spark350"]["bytes"] == 300
    assert manifest["keep_archs"] == ["sm_90"] and manifest["shim"] == "spark413"
    assert manifest["architectures"]["zeroed_bytes"] == {"compute_120": 40, "sm_80": 64}
    assert manifest["symbol_bytes_zeroed"] == 67
    assert record == {**manifest, "jar_bytes": (tmp_path / "dst.jar").stat().st_size}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dst.jar", "src.jar"]  # no temporary files left
    assert lines


def test_prune_plugin_jar_unpruned_keeps_the_library_whole(tmp_path):
    library = jar(tmp_path / "src.jar")
    record = fatbin.prune_plugin_jar(tmp_path / "src.jar", tmp_path / "dst.jar", "spark350", None,
                                     strip_symbols=False, progress=None)
    with zipfile.ZipFile(tmp_path / "dst.jar") as z:
        assert z.read(fatbin.LIBRARY) == library
        assert "spark350/com/nvidia/Shim.class" in z.namelist()
    assert record["architectures"] is None and record["symbol_bytes_zeroed"] == 0


def test_prune_plugin_jar_refuses_a_missing_shim_and_a_pruned_jar(tmp_path):
    jar(tmp_path / "src.jar")
    with pytest.raises(ValueError, match=r"src.jar has no spark999/ shim directory; it has: spark350, spark413"):
        fatbin.prune_plugin_jar(tmp_path / "src.jar", tmp_path / "dst.jar", "spark999", {"sm_90"}, progress=None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src.jar"]
    fatbin.prune_plugin_jar(tmp_path / "src.jar", tmp_path / "dst.jar", "spark413", None, progress=None)
    with pytest.raises(ValueError, match=r"dst.jar is already pruned"):
        fatbin.prune_plugin_jar(tmp_path / "dst.jar", tmp_path / "again.jar", "spark413", None, progress=None)
