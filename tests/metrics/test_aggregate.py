"""Cloud bins and aggregation of per-sample records."""

from __future__ import annotations

import numpy as np
import pytest

from cloudyeo.metrics import aggregate, cloud_bin_label, cloud_bin_labels, cloud_bins


def test_cloud_bin_labels_and_edges():
    assert cloud_bin_labels()[0] == "0-10%" and cloud_bin_labels()[-1] == "90-100%"
    assert len(cloud_bin_labels()) == 10
    assert cloud_bin_label(0.0) == "0-10%"
    assert cloud_bin_label(0.0999) == "0-10%"
    assert cloud_bin_label(0.1) == "10-20%"  # left-closed
    assert cloud_bin_label(0.3) == "30-40%"  # 0.3 is not 0.29999 after binning
    assert cloud_bin_label(1.0) == "90-100%"  # last bin includes its right edge
    assert cloud_bin_label(float("nan")) == "unknown"
    assert cloud_bin_label(None) == "unknown"
    assert cloud_bin_label(0.5, edges=[0, 0.25, 0.5, 1]) == "50-100%"
    np.testing.assert_array_equal(
        cloud_bins([0.05, 0.55, 1.0], edges=[0, 0.5, 1]), ["0-50%", "50-100%", "50-100%"]
    )
    with pytest.raises(ValueError, match="outside"):
        cloud_bin_label(42.0)  # percent given instead of a fraction
    with pytest.raises(ValueError, match="ascending"):
        cloud_bin_labels([0, 0.5, 0.5])


def test_aggregate_by_method_and_cloud_bin():
    records = [
        {"method": "a", "cloud_fraction": 0.05, "nrmse": 0.1, "psnr": 30.0},
        {"method": "a", "cloud_fraction": 0.08, "nrmse": 0.3, "psnr": 20.0},
        {"method": "a", "cloud_fraction": 0.95, "nrmse": 0.5, "psnr": float("nan")},
        {"method": "b", "cloud_fraction": 1.0, "nrmse": 0.2, "psnr": 25.0},
        {"method": "b", "cloud_fraction": 0.15, "nrmse": 0.4, "psnr": 15.0},
    ]
    table = aggregate(records)
    assert list(table.columns[:3]) == ["method", "cloud_bin", "n"]
    rows = {(r.method, r.cloud_bin): r for r in table.itertuples()}
    assert set(rows) == {("a", "0-10%"), ("a", "90-100%"), ("b", "10-20%"), ("b", "90-100%")}
    assert rows["a", "0-10%"].nrmse == pytest.approx(0.2)
    assert rows["a", "0-10%"].psnr == pytest.approx(25.0)
    assert rows["a", "0-10%"].n == 2
    assert np.isnan(rows["a", "90-100%"].psnr)  # only NaN in the group
    assert rows["a", "90-100%"].n_psnr == 0
    # bins come out in bin order within a method
    assert list(table[table.method == "b"].cloud_bin.astype(str)) == ["10-20%", "90-100%"]
    per_method = aggregate(records, by=["method"], metrics=["nrmse"])
    assert list(per_method.columns) == ["method", "n", "nrmse"]
    assert per_method.set_index("method").loc["b", "nrmse"] == pytest.approx(0.3)


def test_aggregate_per_class_and_missing_columns():
    records = [
        {"method": "m", "class": "forest", "ap": 0.8},
        {"method": "m", "class": "forest", "ap": 0.6},
        {"method": "m", "class": "water", "ap": 0.9},
    ]
    table = aggregate(records, by=["method", "class"])
    assert table.set_index("class").loc["forest", "ap"] == pytest.approx(0.7)
    with pytest.raises(KeyError, match="cloud_fraction"):
        aggregate(records)
