"""s2cloudless on real demo-world L1C scenes, scored against the world's truth masks."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio

pytest.importorskip("s2cloudless")

from cloudyeo.archives import LocalStacArchive
from cloudyeo.demo import generate_world
from cloudyeo.masks import (
    CloudMaskParams,
    compute_cloud_masks,
    confusion_counts,
    mask_metrics,
    read_l1c_reflectance,
    read_truth,
    run_s2cloudless,
    to_output_resolution,
)
from cloudyeo.sentinel import S2_L1C_BANDS

WORLD = {"tiles": ["33UUP"], "tile_size_px": 240, "references_per_tile": 1, "days_around_reference": 20}


@pytest.fixture(scope="module")
def l1c_records(tmp_path_factory):
    out = generate_world(WORLD, tmp_path_factory.mktemp("masks") / "world", progress=False)
    return LocalStacArchive(out / "catalog").records("sentinel-2-l1c")


def _cloudy(records):
    """A 30-80 % cloudy scene, preferring one with the baseline-04.00 offset (-1000 DN)."""
    cloudy = [r for r in records if 30.0 <= (r.cloud_cover or 0.0) <= 80.0]
    assert cloudy, "the tiny world has no 30-80 % cloudy L1C scene"
    return min(cloudy, key=lambda r: (r.radiometric_offset == 0.0, r.id))


def test_l1c_reading_applies_the_offset(l1c_records):
    rec = _cloudy(l1c_records)
    x = read_l1c_reflectance(rec)
    assert x.shape == (13, 240, 240) and x.dtype == np.float32
    with rasterio.open(rec.assets["B02"].href) as src:
        dn = src.read(1).astype(np.float64)
    expected = (dn + rec.radiometric_offset) / rec.quantification
    np.testing.assert_allclose(x[S2_L1C_BANDS.index("B02")], expected, atol=1e-6)
    if rec.processing_baseline and float(rec.processing_baseline) >= 4.0:
        assert rec.radiometric_offset == -1000.0


def test_thick_cloud_recall_on_a_cloudy_scene(l1c_records):
    rec = _cloudy(l1c_records)
    x, truth = read_l1c_reflectance(rec), read_truth(rec)
    prob, mask = compute_cloud_masks(x)
    m = mask_metrics(confusion_counts(mask, truth))
    # Measured on this world: thick-cloud recall 1.00 (60, 20 and 10 m). The demo's thick
    # clouds are bright and flat with B10 ~0.15, which s2cloudless cannot miss.
    assert m["thick"]["recall"] >= 0.95, m
    assert m["cloud"]["recall"] >= 0.75, m
    assert m["thick"]["iou"] >= 0.4, m
    # Thick cloud pixels: a confident probability, not just a mask that leaks over them.
    assert np.median(prob[(truth & 1) > 0]) >= 90

    # Reading the bands at 60 m directly gives nearly the same mask as the 10 m path.
    prob_w, mask_w = run_s2cloudless(read_l1c_reflectance(rec, resolution_m=60), CloudMaskParams())
    _, mask2 = to_output_resolution(prob_w, mask_w, CloudMaskParams(), truth.shape)
    assert (mask2 != mask).mean() < 0.02


def test_clear_scene_stays_clear(l1c_records):
    """Guards the radiometry: with a wrong offset s2cloudless flags everything."""
    clear = [r for r in l1c_records if r.cloud_cover == 0.0]
    assert clear
    for rec in clear:
        x = read_l1c_reflectance(rec)
        _, mask = compute_cloud_masks(x)
        assert mask.mean() < 0.05, (rec.id, mask.mean())
        # The same scene read without RADIO_ADD_OFFSET (+0.1 everywhere) flags far more pixels.
        _, wrong = compute_cloud_masks(x + 0.1)
        assert wrong.mean() > mask.mean() + 0.25, (rec.id, mask.mean(), wrong.mean())
