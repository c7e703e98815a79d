"""STAC presets: the Sentinel-1 collection each one maps to, and what it declares about it."""

from __future__ import annotations

import pytest

from cloudyeo.archives.base import SAR_GEOMETRY, SAR_RADIOMETRY, SAR_UNITS
from cloudyeo.archives.presets import PC_RTC, PRESETS, RAW_GRD, get_preset


def test_every_real_preset_states_what_its_s1_collection_is():
    for name, preset in PRESETS.items():
        if name == "custom":
            assert not preset.s1_collections  # judged per item
            continue
        s1 = preset.collections["sentinel-1-grd"]
        assert s1 in preset.s1_collections, f"{name}: {s1} has no physics"
        for product in preset.s1_collections.values():
            assert product.radiometry in SAR_RADIOMETRY and product.geometry in SAR_GEOMETRY
            assert product.units in SAR_UNITS and product.note
        assert "sentinel-1" in preset.notes.lower()  # the choice is documented per preset


def test_planetary_computer_points_s1_at_rtc():
    pc = get_preset("planetary-computer")
    assert pc.collections["sentinel-1-grd"] == "sentinel-1-rtc"
    assert pc.s1_collections["sentinel-1-rtc"] == PC_RTC and PC_RTC.problem is None
    assert pc.signing == "planetary-computer"  # RTC assets are signed like the S2 ones


@pytest.mark.parametrize("name", ["earth-search", "cdse"])
def test_services_without_calibrated_s1_keep_the_raw_grd_and_say_so(name):
    preset = get_preset(name)
    assert preset.s1_collections[preset.collections["sentinel-1-grd"]] == RAW_GRD
    assert RAW_GRD.problem is not None and "amplitude_dn" in RAW_GRD.problem
    assert "refused" in preset.notes
