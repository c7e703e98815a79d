"""Read a Sentinel-2 L1C scene as TOA reflectance on one grid, and the demo world's truth mask.

Radiometry follows :class:`cloudyeo.archives.SceneRecord`: reflectance =
``(DN + radiometric_offset) / quantification`` (RADIO_ADD_OFFSET = -1000 DN from processing
baseline 04.00 on, 0 before); DN 0 is no data and becomes NaN.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from cloudyeo.masks.s2cloudless import block_nanmean, upsample_bilinear
from cloudyeo.sentinel import S2_BAND_GSD, S2_L1C_BANDS, S2_QUANTIFICATION

TRUTH_ASSET = "truth_mask"
L1C_NODATA_DN = 0


def dn_to_reflectance(dn: np.ndarray, offset_dn: float = 0.0,
                      quantification: float = S2_QUANTIFICATION, nodata: int | None = L1C_NODATA_DN) -> np.ndarray:
    """uint16 DN -> float32 reflectance ``(DN + offset) / quantification``; nodata -> NaN."""
    dn = np.asarray(dn)
    refl = (dn.astype(np.float32) + np.float32(offset_dn)) / np.float32(quantification)
    if nodata is not None:
        refl[dn == nodata] = np.nan
    return refl


def _read_band(href: str) -> np.ndarray:
    # Through the one reading layer (GDAL remote-read options, redacted errors).
    from cloudyeo.archives.reading import open_raster

    with open_raster(None, href, what="L1C band") as src:
        return src.read(1)


def read_l1c_reflectance(record: Any, *, resolution_m: int = 10,
                         bands: Sequence[str] = S2_L1C_BANDS,
                         href: Callable[[Any, str], str] | None = None) -> np.ndarray:
    """All ``bands`` of an L1C scene as float32 TOA reflectance (bands, H, W) at ``resolution_m``.

    ``record`` is a :class:`cloudyeo.archives.SceneRecord` (``assets``, ``radiometric_offset``,
    ``quantification``). Bands coarser than ``resolution_m`` are upsampled bilinearly (pixel
    centres aligned), finer ones block-averaged; every band's native resolution must divide or
    be divided by ``resolution_m``. ``href(record, band)`` may return a signed href (e.g.
    ``lambda r, b: readable_href(archive, r, b)``); by default the asset href is opened.
    """
    out = None
    offset = float(getattr(record, "radiometric_offset", 0.0) or 0.0)
    quant = float(getattr(record, "quantification", S2_QUANTIFICATION) or S2_QUANTIFICATION)
    target = None
    for i, band in enumerate(bands):
        if band not in record.assets:
            raise KeyError(f"scene {record.id} has no asset {band!r} (has {', '.join(sorted(record.assets))})")
        gsd = S2_BAND_GSD[band]
        path = href(record, band) if href else record.assets[band].href
        refl = dn_to_reflectance(_read_band(path), offset, quant)
        if out is None or target is None:  # the first band sets the grid
            h, w = refl.shape
            target = (round(h * gsd / resolution_m), round(w * gsd / resolution_m))
            out = np.empty((len(bands),) + target, dtype=np.float32)
        if gsd == resolution_m:
            res = refl
        elif gsd < resolution_m:
            if resolution_m % gsd:
                raise ValueError(f"{band}: {gsd} m does not divide {resolution_m} m")
            res = block_nanmean(refl, resolution_m // gsd)
        else:
            if gsd % resolution_m:
                raise ValueError(f"{band}: {resolution_m} m does not divide {gsd} m")
            res = upsample_bilinear(refl, gsd // resolution_m, target)
        if res.shape != target:
            raise ValueError(f"{band}: {res.shape} at {resolution_m} m, expected {target}")
        out[i] = res
    if out is None:
        raise ValueError("no bands to read")
    return out


def read_truth(record: Any, href: Callable[[Any, str], str] | None = None) -> np.ndarray:
    """The demo world's truth bit mask (uint8, 10 m) of a Sentinel-2 record."""
    if TRUTH_ASSET not in record.assets:
        raise KeyError(f"scene {record.id} has no {TRUTH_ASSET!r} asset (only demo-world scenes do)")
    return _read_band(href(record, TRUTH_ASSET) if href else record.assets[TRUTH_ASSET].href)
