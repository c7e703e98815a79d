"""Surface dynamics of the demo world (cloudyeo.demo.surface): parcel events, features, SAR physics."""

from __future__ import annotations

import numpy as np
import pytest

from cloudyeo.demo.surface import (
    FEATURE_RIVER,
    FEATURE_ROAD,
    FEATURE_SETTLEMENT,
    ROAD_CLASS,
    SAR_DRY_SNOW_DB,
    SAR_WET_SNOW_DB,
    parcel_greenness,
    phenology,
    sar_sigma0_db,
    snow_is_wet,
    surface_reflectance,
    tile_surface,
    water_mask,
)
from cloudyeo.demo.tiles import make_tile


@pytest.fixture(scope="module")
def surf():
    return tile_surface(make_tile("31UFS", 360), 1)  # Belgium: arable, pasture, a flood


def test_crop_harvest_is_abrupt_and_on_the_parcels_own_date():
    peak, lag = np.array([180.0, 180.0]), np.array([30.0, 45.0])
    before = phenology("crop", 180 + 29, 48.0, np.zeros(2), peak, lag)
    after = phenology("crop", 180 + 31, 48.0, np.zeros(2), peak, lag)
    assert before[0] - after[0] > 0.4  # parcel 0 harvested between the two days
    assert abs(before[1] - after[1]) < 0.05  # parcel 1 still ripening
    assert after[0] == pytest.approx(0.04)


def test_mowing_cuts_grass_and_it_grows_back():
    mow = np.array([[150.0, np.nan, np.nan, np.nan], [np.nan] * 4])
    args = (48.0, np.zeros(2), np.zeros(2), None)
    cut = phenology("grass", 151, *args, mow)
    later = phenology("grass", 200, *args, mow)
    assert cut[0] < 0.5 * cut[1]
    assert later[0] > 0.9 * later[1]


def test_features_are_classes_and_parcels_of_their_own(surf):
    for code in (FEATURE_RIVER, FEATURE_ROAD):
        assert (surf.feature == code).any()
    assert np.all(surf.landcover[surf.feature == FEATURE_RIVER] == 17)
    assert np.all(surf.landcover[surf.feature == FEATURE_ROAD] == ROAD_CLASS)
    if (surf.feature == FEATURE_SETTLEMENT).any():
        assert np.all(surf.landcover[surf.feature == FEATURE_SETTLEMENT] == 0)
    assert surf.edge.any() and not (surf.edge & (surf.feature != 0)).any()
    mown = np.isfinite(surf.parcel_mowing).any(axis=1)
    assert mown.any() and np.all(surf.parcel_class[mown] == 4)


def test_parcels_change_independently(surf):
    """Two crop parcels with the same calendar class are not at the same greenness all year."""
    crops = surf.parcel_class == 2
    g = np.stack([parcel_greenness(surf, "crop", crops, d) for d in range(1, 366, 5)])
    assert g.shape[1] > 5
    corr = np.corrcoef(g.T)
    assert np.nanmedian(corr[np.triu_indices_from(corr, 1)]) < 0.95


def test_floods_turn_the_floodplain_into_water_for_s2_and_s1(surf):
    if not np.isfinite(surf.flood_doy):
        pytest.skip("this tile draws no flood")
    day = int(surf.flood_doy) + 1
    import datetime as dt
    when = dt.date(2018, 1, 1) + dt.timedelta(days=day - 1)
    _, _, water = surface_reflectance(surf, when)
    assert water[surf.floodplain].all()
    dry = dt.date(2018, 1, 1) + dt.timedelta(days=int(surf.flood_doy + surf.flood_days) + 30 - 1)
    assert not water_mask(surf, float(dry.timetuple().tm_yday))[surf.floodplain].all()
    db = sar_sigma0_db(surf, when, np.random.default_rng(0))
    assert np.median(db[0][surf.floodplain]) < -15


def test_wet_snow_is_darker_than_dry_snow():
    assert SAR_WET_SNOW_DB - SAR_DRY_SNOW_DB >= 2.0  # Nagler et al. 2016
    alps = tile_surface(make_tile("32TMS", 240), 1)
    spring, winter = 120.0, 15.0
    assert snow_is_wet(alps, spring).any()
    assert not snow_is_wet(alps, winter).any()


def test_incidence_angle_lowers_backscatter(surf):
    import datetime as dt
    when = dt.date(2018, 6, 1)
    steep = sar_sigma0_db(surf, when, np.random.default_rng(0), 30.0)
    shallow = sar_sigma0_db(surf, when, np.random.default_rng(0), 45.0)
    drop = (steep - shallow)[0] / 15.0
    assert 0.05 <= np.median(drop) <= 0.30  # dB per degree (Mladenova et al. 2013)
