"""The WorldCover -> Planet-CR (DeepGlobe) table: exactly the issue's list, in one place."""

from __future__ import annotations

import numpy as np

from cloudyeo import landcover as lc

# The list of issue #4, verbatim: 10 -> forest; 20, 30 -> rangeland; 40 -> agriculture;
# 50 -> urban; 60 -> barren; 80, 90 -> water; 70, 95, 100 -> ignore (255).
ISSUE = {10: "forest", 20: "rangeland", 30: "rangeland", 40: "agriculture", 50: "urban",
         60: "barren", 80: "water", 90: "water", 70: "ignore", 95: "ignore", 100: "ignore"}


def test_table_matches_the_issue_exactly():
    assert lc.WORLDCOVER_TO_CLASS == ISSUE
    assert sorted(lc.WORLDCOVER_CLASSES) == [10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 100]
    assert lc.CLASSES == ("urban", "agriculture", "rangeland", "forest", "water", "barren")
    assert lc.IGNORE_INDEX == 255


def test_remap_every_code_and_unknown_ones():
    codes = np.array([[10, 20, 30, 40, 50, 60], [70, 80, 90, 95, 100, 0], [42, 255, 10, 10, 10, 10]],
                     dtype=np.uint8)
    out = lc.remap_worldcover(codes)
    assert out.dtype == np.uint8
    idx = {name: i for i, name in enumerate(lc.CLASSES)}
    expected = [[idx["forest"], idx["rangeland"], idx["rangeland"], idx["agriculture"], idx["urban"],
                 idx["barren"]],
                [255, idx["water"], idx["water"], 255, 255, 255],
                [255, 255] + [idx["forest"]] * 4]
    np.testing.assert_array_equal(out, expected)
    # Wider integer inputs (and negative values) are safe.
    np.testing.assert_array_equal(lc.remap_worldcover(np.array([-1, 40, 300])), [255, 1, 255])


def test_fractions_and_attrs():
    cls = np.array([[0, 0, 255, 3]], dtype=np.uint8)
    np.testing.assert_allclose(lc.class_fractions(cls), [0.5, 0, 0, 0.25, 0, 0])
    attrs = lc.remap_table_attrs()
    assert attrs["worldcover_to_class"] == {str(k): v for k, v in ISSUE.items()}
    assert attrs["worldcover_to_index"]["70"] == 255 and attrs["worldcover_to_index"]["50"] == 0
    assert attrs["classes"] == list(lc.CLASSES)
