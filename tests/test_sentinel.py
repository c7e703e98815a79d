"""The one BOA/RADIO_ADD_OFFSET precedence rule (cloudyeo.sentinel.radiometric_offset)."""

from __future__ import annotations

import math

import pytest

from cloudyeo.sentinel import baseline_offset, radiometric_offset


@pytest.mark.parametrize("baseline, applied, band, want", [
    # 1. the service says it already applied the offset: 0 whatever else is said
    ("04.00", True, -1000.0, 0.0),
    ("05.11", True, None, 0.0),
    ("02.14", True, -1000.0, 0.0),
    # 2. a baseline below 04.00 never gets -1000, whatever the band metadata says
    ("02.14", False, -1000.0, 0.0),
    ("03.01", False, -1000.0, 0.0),
    ("03.99", False, None, 0.0),
    # 3. band metadata (in DN) for baselines 04.00+ and unknown baselines
    ("04.00", False, -1000.0, -1000.0),
    ("05.09", False, 0.0, 0.0),
    ("04.00", False, -2000.0, -2000.0),
    (None, False, -1000.0, -1000.0),
    # 4. the baseline rule
    ("04.00", False, None, -1000.0),
    ("05.10", False, None, -1000.0),
    (None, False, None, 0.0),
])
def test_precedence(baseline, applied, band, want):
    got = radiometric_offset(baseline, offset_applied=applied, band_offset_dn=band)
    assert got == want
    assert math.copysign(1.0, got) == (1.0 if want >= 0 else -1.0)  # never -0.0


def test_baseline_rule_and_bad_baseline():
    assert baseline_offset("04.00") == -1000.0 and baseline_offset("03.01") == 0.0
    assert baseline_offset(None) == 0.0
    with pytest.raises(ValueError, match="N/A"):
        radiometric_offset("N/A")
