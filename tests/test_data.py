"""The generator: deterministic, shaped as documented, cached atomically, and never trusted when damaged."""

import json

import numpy as np
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from harness import data
from harness.config import RunSettings

N = 20_000


def files_of(path):
    return {p.name: p.read_bytes() for p in sorted(path.glob("*.parquet"))}


def read(path):
    return pq.read_table(path).to_pandas()


@pytest.mark.parametrize("table", sorted(data.TABLES))
def test_same_seed_same_bytes_other_seed_other_data(tmp_path, table):
    a = data.generate(table, N, 1, tmp_path / "a", progress=None)
    b = data.generate(table, N, 1, tmp_path / "b", progress=None)
    c = data.generate(table, N, 2, tmp_path / "c", progress=None)
    assert files_of(a) == files_of(b)
    assert files_of(a) != files_of(c)


def test_chunks_do_not_depend_on_thread_count(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "CHUNK_ROWS", 5_000)
    one = data.generate("groupby", N, 1, tmp_path / "one", progress=None)
    monkeypatch.setattr(data.os, "cpu_count", lambda: 1)
    serial = data.generate("groupby", N, 1, tmp_path / "serial", progress=None)
    assert len(files_of(one)) == 4
    assert files_of(one) == files_of(serial)


def test_groupby_shape(tmp_path):
    df = read(data.generate("groupby", N, 3, tmp_path / "g", progress=None))
    assert len(df) == N
    assert list(df.columns) == ["id1", "id2", "id3", "id4", "id5", "id6", "v1", "v2", "v3"]
    assert df.id1.astype(str).str.fullmatch(r"id\d{3}").all() and df.id1.nunique() == 100
    assert df.id3.astype(str).str.fullmatch(r"id\d{10}").all() and 150 <= df.id3.nunique() <= N // 100
    assert df.id4.between(1, 100).all() and df.id6.between(1, N // 100).all()
    assert set(df.v1.unique()) == {1, 2, 3, 4, 5} and set(df.v2.unique()) == set(range(1, 16))
    assert df.v3.between(0, 100).all() and df.v3.max() > 99


def test_join_tables_share_about_ninety_percent_of_keys(tmp_path):
    n = 100_000
    x = read(data.generate("join_x", n, 4, tmp_path / "x", progress=None))
    for table, key, size in (("join_small", "id1", 10), ("join_medium", "id2", 100), ("join_big", "id3", n)):
        right = read(data.generate(table, n, 4, tmp_path / table, progress=None))
        assert len(right) == size and right[key].is_unique
        matched = x[key].isin(right[key]).mean()
        assert 0.87 <= matched <= 0.93, (table, matched)
        assert (right[key.replace(key[-1], str(int(key[-1]) + 3))] == "id" + right[key].astype(str)).all()
    assert (x.id6 == "id" + x.id3.astype(str)).all()


def test_features_shape(tmp_path):
    df = read(data.generate("features", N, 5, tmp_path / "f", progress=None))
    assert (df.id == np.arange(N)).all()
    assert 0.005 <= df.x2.isna().mean() <= 0.015 and df.x1.notna().all()
    assert abs(df.x1.mean() - 50) < 0.5 and abs(df.x1.std() - 10) < 0.5
    assert df.cat_lo.nunique() == 10 and df.cat_hi.nunique() > 900
    counts = df.key_zipf.value_counts()
    assert counts.iloc[0] > 0.2 * N  # skewed: the top key alone holds a fifth of the rows
    assert df.key_uniform.between(1, N // 10).all() and df.key_uniform.value_counts().iloc[0] < 0.002 * N
    assert set(df.label.unique()) == {0, 1}


def test_corpus_shape(tmp_path):
    df = read(data.generate("corpus", 10_000_000, 6, tmp_path / "c", progress=None))
    assert len(df) == 10_000 and (df.doc_id == np.arange(10_000)).all()
    words = df.text.str.split()
    assert words.str.len().between(20, 200).all()
    flat = words.explode()
    assert flat.value_counts().index[0] == "the"  # Zipf: the most frequent word leads
    assert 0.04 <= df.text.duplicated().mean() <= 0.06  # planted exact copies
    assert flat.str.contains(r"^[A-Z]").mean() > 0.05 and flat.str.contains(r"[.,!?;:]$").mean() > 0.03


def test_second_ensure_reuses_the_cache(tmp_path):
    messages = []
    first = data.ensure("groupby", N, 1, tmp_path, progress=messages.append)
    stamp = (first / data.MANIFEST).stat().st_mtime_ns
    second = data.ensure("groupby", N, 1, tmp_path, progress=messages.append)
    assert first == second and (first / data.MANIFEST).stat().st_mtime_ns == stamp
    assert len(messages) == 1 and messages[0].startswith("generated groupby")


def damage_truncate(path):
    part = next(path.glob("*.parquet"))
    part.write_bytes(part.read_bytes()[:-100])


def damage_flip_a_byte(path):
    part = next(path.glob("*.parquet"))
    raw = bytearray(part.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    part.write_bytes(bytes(raw))


def damage_remove_manifest(path):
    (path / data.MANIFEST).unlink()


def damage_garble_manifest(path):
    (path / data.MANIFEST).write_text("{not json")


def damage_delete_a_file(path):
    next(path.glob("*.parquet")).unlink()


@pytest.mark.parametrize("damage, problem", [
    (damage_truncate, "truncated"), (damage_flip_a_byte, "CRC-32"), (damage_remove_manifest, "no manifest"),
    (damage_garble_manifest, "unreadable manifest"), (damage_delete_a_file, "missing"),
])
def test_damaged_cache_is_detected_and_regenerated(tmp_path, damage, problem):
    path = data.ensure("features", N, 1, tmp_path, progress=None)
    original = files_of(path)
    damage(path)
    assert problem in data.verify(path)
    messages = []
    assert data.ensure("features", N, 1, tmp_path, progress=messages.append) == path
    assert problem in messages[0] and "regenerating" in messages[0]
    assert data.verify(path) is None and files_of(path) == original


def test_failed_generation_leaves_nothing_behind(tmp_path, monkeypatch):
    def broken(n, start, stop, rng):
        raise RuntimeError("disk full")

    monkeypatch.setitem(data.TABLES, "groupby", data.TableSpec("groupby", lambda n: n, broken))
    with pytest.raises(RuntimeError, match="disk full"):
        data.ensure("groupby", N, 1, tmp_path, progress=None)
    assert list(tmp_path.iterdir()) == []


def test_manifest_describes_the_files(tmp_path):
    path = data.ensure("join_x", N, 1, tmp_path, progress=None)
    manifest = json.loads((path / data.MANIFEST).read_text())
    assert manifest["rows"] == N and manifest["generator_version"] == data.GENERATOR_VERSION
    assert sum(f["rows"] for f in manifest["files"]) == pq.read_table(path).num_rows == N
    assert path.name == f"join_x-n{N}-seed1-v{data.GENERATOR_VERSION}"


def test_unknown_table_and_missing_dataset_are_clear_errors(tmp_path):
    with pytest.raises(data.DataError, match="unknown table 'nope'"):
        data.ensure("nope", N, 1, tmp_path, progress=None)
    with pytest.raises(data.DataError, match="python -m harness generate"):
        data.locate("groupby", N, 1, tmp_path)


def test_a_dataset_under_a_uri_is_written_checked_and_found(tmp_path):
    uri = (tmp_path / "store").as_uri()  # file:///...: the path Spark's executors read
    path = data.ensure("groupby", N, 1, uri, progress=None)
    assert path == f"{uri}/groupby-n{N}-seed1-v{data.GENERATOR_VERSION}"
    assert data.verify(path) is None and data.locate("groupby", N, 1, uri) == path
    local = data.generate("groupby", N, 1, tmp_path / "local", progress=None)
    assert files_of(tmp_path / "store" / path.rsplit("/", 1)[1]) == files_of(local)  # the same bytes
    settings = RunSettings.from_env({"PREPBENCH_DATA_DIR": "s3a://bucket/prep"})
    assert settings.data_dir == "s3a://bucket/prep" and settings.to_env()["PREPBENCH_DATA_DIR"] == "s3a://bucket/prep"


def test_an_object_store_gets_its_files_in_place_and_the_manifest_last(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "_OBJECT_STORES", ("local",))  # this filesystem, treated as one that cannot rename
    bucket = tmp_path / "bucket"
    path = data.dataset_dir(bucket.as_uri(), "groupby", N, 1)
    interrupted = bucket / path.rsplit("/", 1)[1]  # a writer that died before writing its manifest
    interrupted.mkdir(parents=True)
    (interrupted / "part-00000.parquet").write_bytes(b"half a file")
    with pytest.raises(data.DataError, match="is missing"):
        data.locate("groupby", N, 1, bucket.as_uri())
    messages = []
    assert data.ensure("groupby", N, 1, bucket.as_uri(), progress=messages.append) == path
    assert "no manifest" in messages[0]
    assert [p.name for p in bucket.iterdir()] == [interrupted.name]  # no staging directory beside it
    damage_truncate(interrupted)
    assert "truncated" in data.verify(path)  # sizes are checked; CRC-32 would mean downloading every byte


def test_s3a_uris_reach_pyarrow_as_s3(monkeypatch):
    seen = []

    class FileSystem:
        @staticmethod
        def from_uri(uri):
            seen.append(uri)
            return pafs.LocalFileSystem(), "/nowhere"

    monkeypatch.setattr(data.pafs, "FileSystem", FileSystem)
    data.verify("s3a://bucket/prep/groupby")
    assert seen == ["s3://bucket/prep/groupby"]


def test_a_location_pyarrow_cannot_open_is_a_clear_error():
    with pytest.raises(data.DataError, match=r"cannot use 'nosuch://bucket/prep/groupby-\S+' for data: "
                                             r"Unrecognized filesystem.*file://, hdfs://, s3a:// \(or s3://\), gs://"):
        data.ensure("groupby", N, 1, "nosuch://bucket/prep", progress=None)
