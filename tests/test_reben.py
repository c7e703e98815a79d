"""The reBEN reader accepts any folder in the reBEN layout, not only the demo's."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import rasterio
from affine import Affine

from cloudyeo.reben import ReBEN, ReferenceDataError, parse_product, s1_datetime
from cloudyeo.sentinel import S2_BAND_GSD, S2_L2A_BANDS

PRODUCT = "S2B_MSIL2A_20180204T094159_N9999_R036_T34VFN"
S1_PRODUCT_FOLDER = "S1B_IW_GRDH_1SDV_20180204T155220_elsewhere"  # not derivable from the name


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
    s1 = ref.read_s1(patches["s1_name"].iloc[0])  # product folder found by scanning
    assert s1.shape == (2, 120, 120) and np.allclose(s1[0], -8) and np.allclose(s1[1], -15)


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
        ReBEN(folder).metadata
