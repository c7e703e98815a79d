"""PyTorch reader for the SSL4EO Zarr store (four seasons per location, S2 L1C/L2A + S1).

Store layout (written by :mod:`cloudyeo.datasets.ssl4eo`): ``s2_l1c`` (sample, season, 13, y, x)
and ``s2_l2a`` (sample, season, 12, y, x) int16 reflectance x 1e4 (fill -32768), ``s1`` (sample,
season, [VV, VH], y, x) float32 dB (NaN fill); one chunk per (sample, season) and variable;
(sample, season) coordinates ``valid`` (both S2 levels present and complete) and ``s1_valid``.

Each item reads exactly one chunk file per requested modality and season (the chunk file is
read and decoded directly, like :class:`cloudyeo.store.SampleChunkReader`; other layouts fall
back to zarr), so a two-season view for MoCo/MAE costs two chunk reads per modality.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cloudyeo.datasets.reader import StoreDataset

MODALITIES = ("s2_l1c", "s2_l2a", "s1")
SEASON_MODES = ("all", "pair", "one")
BAND_DIMS = {"s2_l1c": "l1c_band", "s2_l2a": "l2a_band", "s1": "polarization"}


def _meta(path: Path, name: str) -> dict:
    return json.loads((path / name / "zarr.json").read_text())


def _read_whole(path: Path, name: str) -> np.ndarray:
    import zarr

    return np.asarray(zarr.open_array(str(path / name), mode="r", zarr_format=3)[...])


class SeasonChunkReader:
    """Read the (sample, season) chunk of a ``(N, S, *inner)`` array chunked ``(1, 1, *inner)``."""

    def __init__(self, path: str | os.PathLike, name: str, *, fast: bool = True) -> None:
        from cloudyeo.store import _fast_decoders, _v3_dtype, _v3_fill

        self.path, self.name = Path(path), name
        meta = _meta(self.path, name)
        self.shape = tuple(meta["shape"])
        self.dtype = np.dtype(_v3_dtype(meta["data_type"]))
        self.inner_shape = self.shape[2:]
        self.fill_value = _v3_fill(meta.get("fill_value"), self.dtype)
        decoders, endian = _fast_decoders(meta) if fast else (None, None)
        chunks = tuple(meta["chunk_grid"]["configuration"]["chunk_shape"])
        enc = meta.get("chunk_key_encoding", {"name": "default"})
        native = self.dtype.itemsize == 1 or endian == sys.byteorder
        self.fast = (decoders is not None and native and chunks == (1, 1, *self.inner_shape)
                     and enc.get("name") == "default")
        self._decoders = decoders
        if self.fast:
            sep = enc.get("configuration", {}).get("separator", "/")
            self._sep = sep
            self._prefix = os.path.join(str(self.path), name, f"c{sep}")
            self._suffix = "".join(f"{sep}0" for _ in self.inner_shape)
        self._zarr: Any = None  # zarr.Array, opened on first slow-path read

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_zarr"] = None
        return state

    def chunk_file(self, i: int, s: int) -> str:
        return f"{self._prefix}{i}{self._sep}{s}{self._suffix}"

    def read(self, i: int, s: int) -> np.ndarray:
        if not (0 <= i < self.shape[0] and 0 <= s < self.shape[1]):
            raise IndexError(f"({i}, {s}) outside {self.shape[:2]} of {self.name!r}")
        out = np.empty(self.inner_shape, dtype=self.dtype)
        if not self.fast:
            if self._zarr is None:
                import zarr

                self._zarr = zarr.open_array(str(self.path / self.name), mode="r", zarr_format=3)
            out[...] = self._zarr[i, s]
            return out
        try:
            with open(self.chunk_file(i, s), "rb") as fh:
                buf = fh.read()
        except FileNotFoundError:  # never written or all fill (zarr skips empty chunks)
            out[...] = self.fill_value
            return out
        if not self._decoders:
            if len(buf) != out.nbytes:
                raise ValueError(f"{self.chunk_file(i, s)}: {len(buf)} bytes, expected {out.nbytes}")
            out[...] = np.frombuffer(buf, dtype=self.dtype).reshape(self.inner_shape)
            return out
        for dec in self._decoders[:-1]:
            buf = dec(buf)
        self._decoders[-1](buf, out)
        return out


class SSL4EODataset(StoreDataset):
    """Locations of the SSL4EO store with all their seasons, or a random pair / one of them.

    Args:
        store_path: the complete store (``results/datasets/ssl4eo.zarr``).
        modalities: any of ``"s2_l1c"``, ``"s2_l2a"``, ``"s1"`` (default L2A + S1).
        seasons: ``"all"`` (every season, invalid ones filled with ``nodata``), ``"pair"`` (two
            distinct valid seasons drawn at random: two views of one place for MoCo-style
            training) or ``"one"`` (one random valid season, e.g. for MAE).
        min_valid_seasons: drop locations with fewer usable seasons (default 1; 2 for "pair").
        require_s1: a season is usable only with S1 too (default: True when ``fuse``).
        fuse: add ``"image"`` = S1 VV, VH then the 12 L2A bands stacked on the channel axis
            (early fusion; order in :attr:`fused_channels`).
        normalize: subtract the per-band mean and divide by the SD of the store's
            ``band_statistics`` (valid seasons of the whole store, written by finalize).
        nodata: value for missing pixels and unusable seasons (default NaN); applied after
            normalisation, so ``nodata=0.0`` gives the band mean once normalised.
        transforms: a callable applied to each sample dict.
        seed: None draws seasons from torch's RNG (different per DataLoader worker and epoch);
            an int makes the draw a function of (seed, epoch, sample) - see :meth:`set_epoch`.

    Items are dicts of tensors with a leading season axis T (all seasons, 2 or 1):
    ``s2_l2a`` float32 [T, 12, P, P] reflectance, ``s2_l1c`` [T, 13, P, P], ``s1`` [T, 2, P, P]
    dB, ``image`` [T, 14, P, P] when fused, ``season`` int64 [T] season indices, ``valid`` bool
    [T] (season usable: S2 present, and S1 too with ``require_s1``), ``s1_valid`` bool [T],
    ``index`` int64 (the sample in the whole store).
    """

    title = "SSL4EO"
    build_rule = "ssl4eo_finalize"

    def __init__(
        self,
        store_path: str | os.PathLike,
        *,
        modalities: Sequence[str] = ("s2_l2a", "s1"),
        seasons: str = "all",
        min_valid_seasons: int | None = None,
        require_s1: bool | None = None,
        fuse: bool = False,
        normalize: bool = False,
        nodata: float = float("nan"),
        seed: int | None = None,
        fast: bool = True,
        transforms=None,
    ) -> None:
        super().__init__(store_path, transforms=transforms)
        self.modalities = tuple(modalities)
        unknown = [m for m in self.modalities if m not in MODALITIES]
        if unknown or not self.modalities:
            raise ValueError(f"modalities must be a non-empty subset of {MODALITIES}, got {modalities}")
        if seasons not in SEASON_MODES:
            raise ValueError(f"seasons must be one of {SEASON_MODES}, got {seasons!r}")
        if fuse and not {"s1", "s2_l2a"} <= set(self.modalities):
            raise ValueError("fuse=True needs modalities s1 and s2_l2a")
        self._verify((*self.modalities, "valid", "s1_valid", "location"), require_complete=False)
        self.seasons = seasons
        self.fuse = fuse
        self.require_s1 = fuse if require_s1 is None else bool(require_s1)
        self.nodata = np.float32(nodata)
        self.seed = seed
        self.epoch = 0
        self.fast = fast

        root = self.store_attrs
        self.season_dates = [str(s) for s in _read_whole(self.path, "season")]
        self.band_names = {m: [str(b) for b in _read_whole(self.path, BAND_DIMS[m])] for m in self.modalities}
        self.fused_channels = ([*self.band_names["s1"], *self.band_names["s2_l2a"]] if fuse else [])
        self._scale, self._fill = {}, {}
        for m in self.modalities:
            enc = self.encoding(m)
            self._scale[m], self._fill[m] = enc.scale, enc.fill
        self._norm = self._normalisation(root) if normalize else None

        self.s2_valid = _read_whole(self.path, "valid").astype(bool)
        self.s1_valid = _read_whole(self.path, "s1_valid").astype(bool) & self.s2_valid
        self.locations = np.array([str(v) for v in _read_whole(self.path, "location")], dtype=object)
        usable = self.usable_seasons
        need = min_valid_seasons if min_valid_seasons is not None else (2 if seasons == "pair" else 1)
        if seasons == "pair" and need < 2:
            raise ValueError("seasons='pair' needs min_valid_seasons >= 2")
        self.indices = np.flatnonzero(usable.sum(axis=1) >= need).astype(np.int64)
        self._readers: dict[str, SeasonChunkReader] | None = None

    @property
    def usable_seasons(self) -> np.ndarray:
        """(sample, season) mask of the seasons this reader draws from."""
        return self.s2_valid & self.s1_valid if self.require_s1 else self.s2_valid

    def _normalisation(self, attrs: dict) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        stats = attrs.get("band_statistics")
        if not stats:
            raise KeyError(f"{self.path} has no band_statistics attribute (finalize writes it)")
        out = {}
        for m in self.modalities:
            by_band = {r["band"]: r for r in stats if r["variable"] == m}
            mean = np.array([by_band[b]["mean"] for b in self.band_names[m]], dtype=np.float32)
            std = np.array([by_band[b]["std"] for b in self.band_names[m]], dtype=np.float32)
            out[m] = (mean[:, None, None], np.where(std > 0, std, 1.0).astype(np.float32)[:, None, None])
        return out

    def set_epoch(self, epoch: int) -> None:
        """With a fixed ``seed``: draw other season pairs in another epoch (same per epoch)."""
        self.epoch = int(epoch)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_readers"] = None
        return state

    def __len__(self) -> int:
        return len(self.indices)

    def _pick(self, i: int) -> np.ndarray:
        n_seasons = self.s2_valid.shape[1]
        if self.seasons == "all":
            return np.arange(n_seasons)
        k = 2 if self.seasons == "pair" else 1
        cand = np.flatnonzero(self.usable_seasons[i])
        if self.seed is None:
            order = torch.randperm(len(cand)).numpy()
        else:
            order = np.random.default_rng([self.seed, self.epoch, i]).permutation(len(cand))
        return cand[order[:k]]

    def load(self, idx: int) -> dict[str, torch.Tensor]:
        i = int(self.indices[idx])
        if self._readers is None:
            self._readers = {m: SeasonChunkReader(self.path, m, fast=self.fast) for m in self.modalities}
        picked = self._pick(i)
        usable = self.usable_seasons[i, picked]
        s1_ok = self.s1_valid[i, picked]
        item: dict[str, torch.Tensor] = {}
        arrays: dict[str, np.ndarray] = {}
        for m in self.modalities:
            reader = self._readers[m]
            ok = s1_ok if m == "s1" else usable
            arr = np.empty((len(picked), *reader.inner_shape), dtype=np.float32)
            for t, s in enumerate(picked):
                if not ok[t]:
                    arr[t] = self.nodata
                    continue
                raw = reader.read(i, int(s))
                val = raw.astype(np.float32)
                if self._scale[m] != 1:
                    val *= self._scale[m]
                missing = ~np.isfinite(val) if self._fill[m] is None else (raw == self._fill[m])
                if self._norm is not None:
                    mean, std = self._norm[m]
                    val -= mean
                    val /= std
                if missing.any():
                    val[missing] = self.nodata
                if not np.isnan(self.nodata):
                    val[~np.isfinite(val)] = self.nodata
                arr[t] = val
            arrays[m] = arr
            item[m] = torch.from_numpy(arr)
        if self.fuse:  # numpy: torch.cat on a busy machine cost 10 ms here (thread start-up)
            item["image"] = torch.from_numpy(np.concatenate([arrays["s1"], arrays["s2_l2a"]], axis=1))
        item["season"] = torch.from_numpy(picked.astype(np.int64))
        item["valid"] = torch.from_numpy(usable.copy())
        item["s1_valid"] = torch.from_numpy(s1_ok.copy())
        item["index"] = torch.tensor(i, dtype=torch.int64)
        return item

    def __repr__(self) -> str:
        return (f"SSL4EODataset({str(self.path)!r}, seasons={self.seasons!r}, "
                f"modalities={self.modalities}, {len(self)} locations)")
