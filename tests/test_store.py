"""cloudyeo.store: layout, CF decoding through xarray, parallel writes, completeness."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from cloudyeo import store
from cloudyeo.store import IncompleteStoreError, VariableSpec

N = 6
BANDS = np.array(["B02", "B03", "B04"])


def _variables() -> dict[str, VariableSpec]:
    return {
        "s2": VariableSpec(
            ("band", "y", "x"), (3, 8, 8), "int16",
            {"scale_factor": 1e-4, "_FillValue": -32768, "units": "1",
             "long_name": "surface reflectance"},
        ),
        "s1": VariableSpec(
            ("polarization", "y", "x"), (2, 8, 8), "float32",
            {"_FillValue": float("nan"), "units": "dB"},
        ),
        "labels": VariableSpec(("label",), (4,), "uint8", {"long_name": "multi-hot labels"}),
    }  # fmt: skip


def _coords() -> dict:
    return {
        "patch_id": (("sample",), np.array([f"S2A_patch_{i}" for i in range(N)], dtype=object)),
        "split": (("sample",), np.array(["train", "train", "validation", "test", "test", "train"])),
        "date": (("sample",), np.array(["2020-06-01T10:30", "NaT"] + ["2021-01-02"] * (N - 2),
                                       dtype="datetime64[ns]")),
        "lat": (("sample",), np.linspace(40.0, 45.0, N)),
        "band": (("band",), BANDS),
        "polarization": (("polarization",), np.array(["VV", "VH"])),
    }  # fmt: skip


ROOT_ATTRS = {"band_order": list(BANDS), "config": {"patch": 120, "seed": 1}, "version": "0.1"}


@pytest.fixture()
def path(tmp_path):
    p = tmp_path / "ds.zarr"
    store.create_store(p, N, _variables(), _coords(), ROOT_ATTRS)
    return p


def _payload(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "s2": rng.integers(0, 10000, (n, 3, 8, 8)).astype(np.int16),
        "s1": rng.normal(-12, 3, (n, 2, 8, 8)).astype(np.float32),
        "labels": rng.integers(0, 2, (n, 4)).astype(np.uint8),
    }


def test_roundtrip_through_xarray(path):
    data = _payload(N)
    data["s2"][1, 0, 0, 0] = -32768
    data["s1"][2, 1, 3, 3] = np.nan
    store.write_samples(path, 0, data)
    store.mark_complete(path)
    ds = store.open_store(path)

    assert ds.s2.dims == ("sample", "band", "y", "x")
    assert ds.s1.dims == ("sample", "polarization", "y", "x")
    assert ds.labels.dims == ("sample", "label")
    assert dict(ds.sizes) == {"sample": N, "band": 3, "y": 8, "x": 8, "polarization": 2, "label": 4}
    assert set(ds.coords) >= {"patch_id", "split", "date", "lat", "band", "polarization"}
    assert set(ds.data_vars) == {"s2", "s1", "labels"}
    assert list(ds.band.values) == list(BANDS)
    assert list(ds.patch_id.values) == [f"S2A_patch_{i}" for i in range(N)]
    assert ds.split.values[2] == "validation"
    assert ds.date.values[0] == np.datetime64("2020-06-01T10:30")
    assert np.isnat(ds.date.values[1])
    np.testing.assert_allclose(ds.lat.values, np.linspace(40.0, 45.0, N))

    s2 = ds.s2.values
    assert s2.dtype.kind == "f"
    assert np.isnan(s2[1, 0, 0, 0])
    valid = data["s2"] != -32768
    np.testing.assert_allclose(s2[valid], data["s2"][valid] * 1e-4, rtol=1e-12)
    s1 = ds.s1.values
    np.testing.assert_array_equal(s1, data["s1"])  # NaN where NaN
    np.testing.assert_array_equal(ds.labels.values, data["labels"])
    assert ds.labels.dtype == np.uint8  # no _FillValue: not masked, not converted
    assert ds.s2.attrs["units"] == "1" and ds.s2.attrs["long_name"] == "surface reflectance"
    assert ds.s2.encoding["scale_factor"] == 1e-4
    assert ds.attrs == ROOT_ATTRS


def test_one_chunk_per_sample_and_small_coords(path):
    import zarr

    g = zarr.open_group(str(path), mode="r")
    assert g["s2"].chunks == (1, 3, 8, 8)
    assert g["labels"].chunks == (1, 4)
    assert g["patch_id"].chunks == (N,)
    assert g["s2"].shards is None
    ds = store.open_store(path, require_complete=False)
    assert ds.s2.chunks[0] == (1,) * N
    store.write_samples(path, 3, {k: v[:1] for k, v in _payload(1).items()})
    assert (path / "s2" / "c.3.0.0.0").is_file()
    assert not (path / "s2" / "c.2.0.0.0").exists()


def test_unwritten_samples_read_as_missing(path):
    store.write_samples(path, 2, {k: v[:2] for k, v in _payload(2).items()})
    ds = store.open_store(path, require_complete=False)
    assert np.isnan(ds.s2.values[0]).all() and np.isnan(ds.s1.values[5]).all()
    assert not np.isnan(ds.s2.values[2]).any()


def test_write_samples_validates(path):
    p = _payload(2)
    with pytest.raises(IndexError):
        store.write_samples(path, N - 1, p)
    with pytest.raises(ValueError, match="sample shape"):
        store.write_samples(path, 0, {"s2": p["s2"][:, :2]})
    with pytest.raises(TypeError, match="encode"):
        store.write_samples(path, 0, {"s2": p["s2"] * 1e-4})
    with pytest.raises(KeyError):
        store.write_samples(path, 0, {"nope": p["s2"]})
    # float64 S1 is cast to the stored float32
    store.write_samples(path, 0, {"s1": p["s1"].astype(np.float64)})


_WRITER = textwrap.dedent(
    """
    import sys, numpy as np
    from cloudyeo import store
    path, start, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    for i in range(start, start + n):  # one sample at a time, interleaving with the other job
        store.write_samples(path, i, {
            "s2": np.full((1, 3, 8, 8), i + 1, np.int16),
            "s1": np.full((1, 2, 8, 8), -i, np.float32),
            "labels": np.full((1, 4), i % 2, np.uint8)})
    """
)


def test_parallel_disjoint_writes_from_two_processes(path):
    store.mark_complete(path)
    procs = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(path), str(s), "3"])
        for s in (0, 3)
    ]
    assert [p.wait(timeout=60) for p in procs] == [0, 0]
    assert not store.is_complete(path)  # writing removed the marker
    store.mark_complete(path)
    ds = store.open_store(path)
    for i in range(N):
        np.testing.assert_allclose(ds.s2.values[i], (i + 1) * 1e-4)
        assert (ds.s1.values[i] == -i).all()
        assert (ds.labels.values[i] == i % 2).all()


def test_completeness_marker(path):
    assert not store.is_complete(path)
    with pytest.raises(IncompleteStoreError, match=str(path)):
        store.open_store(path)
    store.open_store(path, require_complete=False)  # inspectable anyway
    store.mark_complete(path, {"n_written": 6, "stats": {"mean": np.float32(0.5)}})
    assert store.is_complete(path)
    assert store.marker_path(path).is_file()
    ds = store.open_store(path)
    assert ds.attrs["n_written"] == 6 and ds.attrs["stats"] == {"mean": 0.5}
    assert ds.attrs["config"] == ROOT_ATTRS["config"]  # merged, not replaced
    root = json.loads((path / "zarr.json").read_text())
    assert "consolidated_metadata" in root
    store.mark_incomplete(path)
    store.mark_incomplete(path)  # idempotent
    assert not store.is_complete(path)
    with pytest.raises(IncompleteStoreError):
        store.open_store(path)
    with pytest.raises(FileNotFoundError, match="no Zarr"):
        store.open_store(path.parent / "missing.zarr")


def test_marker_is_invisible_to_xarray(path):
    store.mark_complete(path)
    ds = store.open_store(path, consolidated=False)
    assert store.MARKER_NAME not in ds.variables


def test_write_coords_adds_and_replaces(path):
    store.mark_complete(path)
    cf = np.linspace(0, 1, N).astype(np.float32)
    store.write_coords(path, {
        "cloud_fraction": (("sample",), cf),
        "split": (("sample",), np.array(["test"] * N)),
        "scene_date": (("sample",), np.array(["2019-05-05"] * N, dtype="datetime64[s]")),
    })  # fmt: skip
    assert not store.is_complete(path)
    store.mark_complete(path)
    ds = store.open_store(path)
    assert "cloud_fraction" in ds.coords and "scene_date" in ds.coords
    np.testing.assert_array_equal(ds.cloud_fraction.values, cf)
    assert list(ds.split.values) == ["test"] * N
    assert ds.scene_date.values[0] == np.datetime64("2019-05-05")
    with pytest.raises(ValueError, match="size"):
        store.write_coords(path, {"bad": (("sample",), np.zeros(N + 1))})
    with pytest.raises(ValueError, match="data variable"):
        store.write_coords(path, {"s2": (("sample",), np.zeros(N))})


def test_create_store_overwrites_but_refuses_foreign_folder(path, tmp_path):
    store.write_samples(path, 0, _payload(1))
    store.mark_complete(path)
    store.create_store(path, 2, _variables(), {}, {"fresh": True})
    assert not store.is_complete(path)
    ds = store.open_store(path, require_complete=False)
    assert ds.sizes["sample"] == 2 and ds.attrs == {"fresh": True}
    foreign = tmp_path / "notzarr"
    foreign.mkdir()
    (foreign / "precious.txt").write_text("x")
    with pytest.raises(FileExistsError):
        store.create_store(foreign, 1, _variables(), {}, {})


@pytest.mark.parametrize("codec", sorted(store.CODECS))
def test_codecs_and_fast_reader_match_zarr(tmp_path, codec):
    import zarr

    p = tmp_path / f"{codec}.zarr"
    store.create_store(p, 3, _variables(), {}, {}, codec=codec)
    data = _payload(2)
    store.write_samples(p, 0, data)
    for name in ("s2", "s1", "labels"):
        fast = store.SampleChunkReader(p, name)
        slow = store.SampleChunkReader(p, name, fast=False)
        assert fast.fast and not slow.fast
        z = zarr.open_array(str(p / name), mode="r")
        for i in range(3):  # sample 2 was never written: fill value
            np.testing.assert_array_equal(fast.read(i), z[i])
            np.testing.assert_array_equal(slow.read(i), z[i])
        np.testing.assert_array_equal(fast.read_all(), z[...])
    with pytest.raises(IndexError):
        store.SampleChunkReader(p, "s2").read(3)


@pytest.mark.parametrize("align", [64, 4096])
def test_aligned_empty_starts_on_the_boundary(align):
    for shape, dtype in (((12, 120, 120), np.int16), ((2, 7, 5), np.float32), ((3,), np.uint8)):
        a = store.aligned_empty(shape, dtype, align)
        assert a.shape == shape and a.dtype == np.dtype(dtype)
        assert a.flags.c_contiguous and a.flags.writeable
        assert a.__array_interface__["data"][0] % align == 0
        a[...] = 3
        assert (a == 3).all()


# --------------------------------------------------------------------------- sharded variables

PER_SHARD = 4  # N = 6 samples: shard 0 holds samples 0-3, shard 1 samples 4-5


def _sharded() -> dict[str, VariableSpec]:
    from dataclasses import replace

    v = _variables()
    return {k: replace(s, samples_per_shard=PER_SHARD) if k != "labels" else s for k, s in v.items()}


@pytest.fixture()
def sharded(tmp_path):
    p = tmp_path / "sharded.zarr"
    store.create_store(p, N, _sharded(), _coords(), ROOT_ATTRS, codec="none")  # CBEN's default
    return p


def _shard_inodes(path, name="s2") -> dict[str, int]:
    return {f.name: f.stat().st_ino for f in (path / name).glob("c.*")}


def test_sharded_writes_are_staged_then_packed(sharded):
    import zarr

    data = _payload(N)
    data["s2"][1, 0, 0, 0] = -32768
    store.write_samples(sharded, 1, {k: v[1:4] for k, v in data.items()})
    # extraction writes one file per sample, never a shard
    assert sorted(f.name for f in (sharded / "_staging" / "s2").glob("c.*")) == [
        "c.1.0.0.0", "c.2.0.0.0", "c.3.0.0.0"
    ]  # fmt: skip
    assert not _shard_inodes(sharded)
    assert store.pack_shards(sharded) == {"s1": [0], "s2": [0]}
    assert not list((sharded / "_staging" / "s2").glob("c.*"))
    assert set(_shard_inodes(sharded)) == {"c.0.0.0.0"}  # shard 1 has no data: no file
    assert store.pack_shards(sharded) == {}  # nothing left to pack
    store.write_samples(sharded, 0, {k: v[[0, 4, 5]][:1] for k, v in data.items()})
    store.write_samples(sharded, 4, {k: v[4:] for k, v in data.items()})
    store.mark_complete(sharded)  # packs what is staged
    assert set(_shard_inodes(sharded)) == {"c.0.0.0.0", "c.1.0.0.0"}

    g = zarr.open_group(str(sharded), mode="r")
    assert g["s2"].shards == (PER_SHARD, 3, 8, 8) and g["s2"].chunks == (1, 3, 8, 8)
    ds = store.open_store(sharded)
    assert set(ds.data_vars) == {"s2", "s1", "labels"}  # the staging group stays invisible
    valid = data["s2"] != -32768
    np.testing.assert_allclose(ds.s2.values[valid], data["s2"][valid] * 1e-4, rtol=1e-12)
    assert np.isnan(ds.s2.values[1, 0, 0, 0])
    np.testing.assert_array_equal(ds.s1.values, data["s1"])
    for name in ("s2", "s1"):
        reader = store.SampleChunkReader(sharded, name)
        assert reader.fast and reader.per_shard == PER_SHARD
        for i in range(N):
            np.testing.assert_array_equal(reader.read(i), data[name][i])
            view = reader.view(i)
            np.testing.assert_array_equal(view, data[name][i])
            assert not view.flags.writeable  # a window on the mapped file


def test_pack_rebuilds_only_the_shards_of_restaged_samples(sharded):
    data = _payload(N)
    store.write_samples(sharded, 0, data)
    store.mark_complete(sharded)
    before = _shard_inodes(sharded)
    changed = {k: v[5:] + 1 for k, v in data.items()}
    store.write_samples(sharded, 5, changed)
    assert not store.is_complete(sharded)
    assert store.pack_shards(sharded) == {"s1": [1], "s2": [1]}
    after = _shard_inodes(sharded)
    assert after["c.0.0.0.0"] == before["c.0.0.0.0"]  # untouched
    assert after["c.1.0.0.0"] != before["c.1.0.0.0"]  # replaced whole, by rename
    store.mark_complete(sharded)
    ds = store.open_store(sharded)
    np.testing.assert_array_equal(ds.s1.values[:5], data["s1"][:5])  # kept from the old shard
    np.testing.assert_array_equal(ds.s1.values[5], changed["s1"][0])


def test_killed_pack_keeps_the_staged_samples_and_finishes_next_time(sharded, monkeypatch):
    data = _payload(N)
    store.write_samples(sharded, 0, data)
    real_replace = store.os.replace

    def die_after_first_shard(src, dst):
        real_replace(src, dst)
        if str(dst) == str(sharded / "s2" / "c.0.0.0.0"):  # not zarr's own temp-file renames
            raise KeyboardInterrupt  # killed after the first shard landed

    monkeypatch.setattr(store.os, "replace", die_after_first_shard)
    with pytest.raises(KeyboardInterrupt):
        store.mark_complete(sharded)
    monkeypatch.undo()
    assert not store.is_complete(sharded)
    with pytest.raises(IncompleteStoreError):
        store.open_store(sharded)
    assert (sharded / "_staging" / "s2" / "c.5.0.0.0").is_file()  # not yet in a shard
    store.mark_complete(sharded)
    ds = store.open_store(sharded)
    np.testing.assert_array_equal(ds.s1.values, data["s1"])
    np.testing.assert_allclose(ds.s2.values, data["s2"] * 1e-4, rtol=1e-12)


@pytest.mark.parametrize("codec", ["none", "blosc-lz4hc"])
def test_all_fill_reextraction_replaces_the_old_pixels(tmp_path, codec):
    """A forced re-extraction of an all-nodata scene: the staged sample is all fill, which zarr
    would skip writing; staging must still record it and packing must write it, so the store
    reads fill, not the previous build's pixels."""
    path = tmp_path / "rebuilt.zarr"
    store.create_store(path, N, _sharded(), _coords(), ROOT_ATTRS, codec=codec)
    data = _payload(N)
    store.write_samples(path, 0, data)
    store.mark_complete(path)
    fill = {"s2": np.full((2, 3, 8, 8), -32768, np.int16), "s1": np.full((2, 2, 8, 8), np.nan, np.float32)}
    store.write_samples(path, 4, fill)  # samples 4-5: all of shard 1
    store.write_samples(path, 1, {k: v[:1] for k, v in fill.items()})  # one sample of shard 0
    staged = sorted(f.name for f in (path / "_staging" / "s2").glob("c.*"))
    assert staged == ["c.1.0.0.0", "c.4.0.0.0", "c.5.0.0.0"]  # every sample given, fill or not
    assert not store.is_complete(path)
    assert store.pack_shards(path) == {"s1": [0, 1], "s2": [0, 1]}
    assert not (path / "s2" / "c.1.0.0.0").exists()  # shard 1 is all fill now: no file
    store.mark_complete(path)

    ds = store.open_store(path)
    for i in (1, 4, 5):
        assert np.isnan(ds.s2.values[i]).all() and np.isnan(ds.s1.values[i]).all()
    for i in (0, 2, 3):  # the other samples of shard 0 come from the old shard
        np.testing.assert_allclose(ds.s2.values[i], data["s2"][i] * 1e-4, rtol=1e-12)
        np.testing.assert_array_equal(ds.s1.values[i], data["s1"][i])
    s2, s1 = store.SampleChunkReader(path, "s2"), store.SampleChunkReader(path, "s1")
    for i in (1, 4, 5):
        assert (s2.read(i) == -32768).all() and np.isnan(s1.read(i)).all()


def test_all_fill_rewrite_of_an_unsharded_variable_reads_fill(path):
    data = _payload(N)
    store.write_samples(path, 0, data)
    store.mark_complete(path)
    store.write_samples(path, 3, {"s2": np.full((1, 3, 8, 8), -32768, np.int16),
                                  "s1": np.full((1, 2, 8, 8), np.nan, np.float32)})
    store.mark_complete(path)
    ds = store.open_store(path)
    assert np.isnan(ds.s2.values[3]).all() and np.isnan(ds.s1.values[3]).all()
    np.testing.assert_array_equal(ds.s1.values[2], data["s1"][2])


def test_parallel_disjoint_writes_to_a_sharded_store(sharded):
    procs = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(sharded), str(s), "3"])
        for s in (0, 3)  # samples 0-2 and 3-5: both processes touch shard 0's samples
    ]
    assert [p.wait(timeout=60) for p in procs] == [0, 0]
    store.mark_complete(sharded)
    ds = store.open_store(sharded)
    for i in range(N):
        np.testing.assert_allclose(ds.s2.values[i], (i + 1) * 1e-4)
        assert (ds.s1.values[i] == -i).all()


def test_a_corrupt_shard_is_named(sharded):
    store.write_samples(sharded, 0, _payload(N))
    store.mark_complete(sharded)
    shard = sharded / "s2" / "c.0.0.0.0"
    raw = bytearray(shard.read_bytes())
    raw[-10] ^= 0xFF  # inside the index
    shard.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=f"{shard}.*checksum"):
        store.SampleChunkReader(sharded, "s2").read(0)
    shard.write_bytes(bytes(raw[:40]))  # truncated
    with pytest.raises(ValueError, match=f"{shard}.*shorter"):
        store.SampleChunkReader(sharded, "s2").read(0)


@pytest.mark.parametrize("codec", ["blosc-lz4hc", "blosc-zstd1"])
def test_sharded_compressed_reads_match_zarr(tmp_path, codec):
    import zarr

    p = tmp_path / f"{codec}.zarr"
    store.create_store(p, N, _sharded(), {}, {}, codec=codec)
    store.write_samples(p, 1, {k: v[1:] for k, v in _payload(N).items()})  # sample 0: fill
    store.mark_complete(p)
    for name in ("s2", "s1"):
        reader = store.SampleChunkReader(p, name)
        assert reader.fast
        z = zarr.open_array(str(p / name), mode="r")
        for i in range(N):
            np.testing.assert_array_equal(reader.read(i), z[i])
            np.testing.assert_array_equal(reader.view(i), z[i])


def test_samples_per_shard_is_validated():
    with pytest.raises(ValueError, match="samples_per_shard"):
        VariableSpec(("y",), (4,), "int16", samples_per_shard=0)
    with pytest.raises(ValueError, match="samples_per_shard"):
        VariableSpec(("t", "y"), (2, 4), "int16", inner_chunks=(1, 4), samples_per_shard=8)


def test_map_readonly(tmp_path):
    f = tmp_path / "bytes.bin"
    f.write_bytes(bytes(range(256)) * 20)
    m = store.map_readonly(f)
    assert m.dtype == np.uint8 and m.size == 5120 and not m.flags.writeable
    np.testing.assert_array_equal(m[:256], np.arange(256))
    part = m[100:200]
    del m  # the slice keeps the mapping alive
    assert part[0] == 100
    (tmp_path / "empty.bin").write_bytes(b"")
    assert store.map_readonly(tmp_path / "empty.bin").size == 0
    with pytest.raises(FileNotFoundError):
        store.map_readonly(tmp_path / "missing.bin")
