"""The reBEN reader accepts any folder in the reBEN release layout, not only the demo's.

The fixture writes the layout of the real BigEarthNet v2.0 download (see ``cloudyeo.reben``):
S2 patches under ``BigEarthNet-S2/<patch id minus 2 fields>/``, S1 patches under
``BigEarthNet-S1/<s1_name minus 3 fields>/``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import rasterio
from affine import Affine

from cloudyeo.reben import (
    ReBEN,
    ReferenceDataError,
    band_shape,
    parse_product,
    product_of,
    s1_datetime,
    s1_product_of,
)
from cloudyeo.sentinel import S2_BAND_GSD, S2_L2A_BANDS

PRODUCT = "S2B_MSIL2A_20180204T094159_N9999_R036_T34VFN"
# The real release's S1 product folder: the s1_name without its last three fields.
S1_PRODUCT_FOLDER = "S1B_IW_GRDH_1SDV_20180204T155220"


def _tif(path, arr, transform, epsg=32634):
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", driver="GTiff", width=arr.shape[1], height=arr.shape[0], count=1,
                       dtype=arr.dtype, crs=f"EPSG:{epsg}", transform=transform) as dst:
        dst.write(arr, 1)


@pytest.fixture
def folder(tmp_path):
    rows = []
    for r, c in ((3, 7), (3, 8)):
        pid = f"{PRODUCT}_{r}_{c}"
        s1_name = f"S1B_IW_GRDH_1SDV_20180204T155220_34VFN_{r}_{c}"
        t10 = Affine(10, 0, 600000 + 1200 * c, 0, -10, 6800000 - 1200 * r)
        for band in S2_L2A_BANDS:
            f = S2_BAND_GSD[band] // 10
            _tif(tmp_path / "BigEarthNet-S2" / PRODUCT / pid / f"{pid}_{band}.tif",
                 np.full((120 // f, 120 // f), 1000 + c, np.uint16), t10 @ Affine.scale(f))
        for pol, val in (("VV", -8.0), ("VH", -15.0)):
            _tif(tmp_path / "BigEarthNet-S1" / S1_PRODUCT_FOLDER / s1_name / f"{s1_name}_{pol}.tif",
                 np.full((120, 120), val, np.float32), t10)
        rows.append(dict(patch_id=pid, labels=["Coniferous forest", "Inland waters"], split="train",
                         country="Finland", s1_name=s1_name, s2v1_name=f"S2B_MSIL2A_20180204T94159_{r}_{c}",
                         contains_seasonal_snow=True, contains_cloud_or_shadow=False))
    pd.DataFrame(rows).to_parquet(tmp_path / "metadata.parquet")
    return tmp_path


def test_reads_any_folder_in_the_layout(folder):
    ref = ReBEN(folder)
    assert ref.products() == [PRODUCT]
    patches = ref.patches(PRODUCT)
    assert len(patches) == 2
    pid = patches["patch_id"].iloc[1]
    grid = ref.grid(pid)
    assert grid.epsg == 32634 and grid.shape == (120, 120)
    assert grid.transform.c == 600000 + 1200 * 8
    bands = ref.read_s2(pid)
    assert bands["B02"].shape == (120, 120) and bands["B05"].shape == (60, 60) and bands["B01"].shape == (20, 20)
    s1 = ref.read_s1(patches["s1_name"].iloc[0])  # product folder derived from the name
    assert s1.shape == (2, 120, 120) and np.allclose(s1[0], -8) and np.allclose(s1[1], -15)


def test_release_names_map_to_release_folders():
    # Examples of the real release (patch id / S1 name -> folder one level up).
    assert product_of("S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_26_57") == \
        "S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP"
    assert s1_product_of("S1A_IW_GRDH_1SDV_20170613T165043_33UUP_61_39") == "S1A_IW_GRDH_1SDV_20170613T165043"
    assert s1_product_of("S1B_IW_GRDH_1SDV_20170612T165809_33UUP_51_83") == "S1B_IW_GRDH_1SDV_20170612T165809"
    with pytest.raises(ReferenceDataError, match="not a BigEarthNet S1 patch name: 'S1A_IW_GRDH_1SDV_20170613T165043_33UUP'"):
        s1_product_of("S1A_IW_GRDH_1SDV_20170613T165043_33UUP")
    assert {b: band_shape(b) for b in ("B02", "B05", "B01")} == {"B02": (120, 120), "B05": (60, 60), "B01": (20, 20)}


def test_s1_folder_in_another_layout_is_a_named_error_not_a_scan(folder):
    """A folder named by dropping only two fields (the old guess) is not searched for: the error
    names the folder the release layout puts the patch in."""
    ref = ReBEN(folder)
    s1_name = ref.metadata["s1_name"].iloc[0]
    expected = folder / "BigEarthNet-S1" / S1_PRODUCT_FOLDER / s1_name
    assert ref.s1_dir(s1_name) == expected
    elsewhere = folder / "BigEarthNet-S1" / s1_name.rsplit("_", 2)[0] / s1_name
    elsewhere.parent.mkdir(parents=True)
    expected.rename(elsewhere)
    with pytest.raises(ReferenceDataError, match="layout mismatch") as exc:
        ref.read_s1(s1_name)
    assert str(expected) in str(exc.value)


def test_s2_patch_folder_missing_is_a_named_error(folder):
    ref = ReBEN(folder)
    pid = ref.patches(PRODUCT)["patch_id"].iloc[0]
    expected = folder / "BigEarthNet-S2" / PRODUCT / pid
    expected.rename(folder / "BigEarthNet-S2" / pid)  # flat layout: not the release's
    for read in (ref.read_s2, ref.grid):
        with pytest.raises(ReferenceDataError, match="layout mismatch") as exc:
            read(pid)
        assert str(expected) in str(exc.value)


@pytest.mark.parametrize(("band", "shape"), [("B02", (119, 120)), ("B05", (120, 120)), ("B09", (60, 60))])
def test_band_of_the_wrong_shape_is_refused_with_the_file(folder, band, shape):
    ref = ReBEN(folder)
    pid = ref.patches(PRODUCT)["patch_id"].iloc[0]
    path = ref.s2_path(pid, band)
    with rasterio.open(path) as src:
        transform = src.transform
    _tif(path, np.zeros(shape, np.uint16), transform)
    with pytest.raises(ReferenceDataError, match=f"{path.name} is {shape[0]}x{shape[1]} pixels") as exc:
        ref.read_s2(pid)
    assert str(path) in str(exc.value)
    if band == "B02":  # the grid is read from B02's header: checked there too
        with pytest.raises(ReferenceDataError, match=path.name):
            ref.grid(pid)


def test_s1_band_of_the_wrong_shape_is_refused_with_the_file(folder):
    ref = ReBEN(folder)
    s1_name = ref.metadata["s1_name"].iloc[0]
    path = ref.s1_path(s1_name, "VH")
    _tif(path, np.zeros((60, 60), np.float32), Affine(20, 0, 0, 0, -20, 0))
    with pytest.raises(ReferenceDataError, match="is 60x60 pixels; a reBEN patch band at this resolution is 120x120") as exc:
        ref.read_s1(s1_name)
    assert str(path) in str(exc.value)


def test_names_parse():
    p = parse_product(PRODUCT)
    assert (p.platform, p.tile, p.relative_orbit, p.baseline) == ("S2B", "34VFN", 36, "99.99")
    assert p.datetime.isoformat() == "2018-02-04T09:41:59+00:00"
    assert s1_datetime("S1B_IW_GRDH_1SDV_20180204T155220_34VFN_3_7").hour == 15
    with pytest.raises(ReferenceDataError, match="not a BigEarthNet S2 product"):
        parse_product("LC08_L2SP_190026")


def test_clear_errors_name_the_path(folder):
    (folder / "metadata.parquet").rename(folder / "meta.bak")
    with pytest.raises(ReferenceDataError, match="metadata.parquet"):
        ReBEN(folder)
    (folder / "meta.bak").rename(folder / "metadata.parquet")
    ref = ReBEN(folder)
    pid = ref.patches(PRODUCT)["patch_id"].iloc[0]
    ref.s2_path(pid, "B11").unlink()
    with pytest.raises(ReferenceDataError, match=f"{pid}_B11.tif"):
        ref.read_s2(pid)


def test_unknown_labels_rejected(folder):
    df = pd.read_parquet(folder / "metadata.parquet")
    df["labels"] = [["Moon dust"], ["Inland waters"]]
    df.to_parquet(folder / "metadata.parquet")
    with pytest.raises(ReferenceDataError, match="Moon dust"):
        _ = ReBEN(folder).metadata
