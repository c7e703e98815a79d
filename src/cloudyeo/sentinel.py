"""Sentinel-1/2 band tables, SCL codes and the BigEarthNet 19-class nomenclature.

One home for these facts; every module imports them from here.
"""

from __future__ import annotations

# Sentinel-2 MSI bands: name -> native ground sampling distance in metres.
S2_BAND_GSD: dict[str, int] = {
    "B01": 60, "B02": 10, "B03": 10, "B04": 10, "B05": 20, "B06": 20, "B07": 20,
    "B08": 10, "B8A": 20, "B09": 60, "B10": 60, "B11": 20, "B12": 20,
}
# L1C carries all 13 bands; L2A drops the cirrus band B10 (12 bands). Order as in the SAFE.
S2_L1C_BANDS: tuple[str, ...] = (
    "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12",
)
S2_L2A_BANDS: tuple[str, ...] = tuple(b for b in S2_L1C_BANDS if b != "B10")
S2_CENTRAL_WAVELENGTH_NM: dict[str, float] = {
    "B01": 443, "B02": 490, "B03": 560, "B04": 665, "B05": 705, "B06": 740, "B07": 783,
    "B08": 842, "B8A": 865, "B09": 945, "B10": 1375, "B11": 1610, "B12": 2190,
}

# Sen2Cor scene classification (SCL) codes.
SCL_CODES: dict[int, str] = {
    0: "no_data", 1: "saturated_or_defective", 2: "dark_area_pixels", 3: "cloud_shadows",
    4: "vegetation", 5: "not_vegetated", 6: "water", 7: "unclassified",
    8: "cloud_medium_probability", 9: "cloud_high_probability", 10: "thin_cirrus",
    11: "snow",
}
SCL_CLOUD = (8, 9)
SCL_CIRRUS = (10,)
SCL_SHADOW = (3,)

# Default quantification value of L1C/L2A products and the offset introduced with
# processing baseline 04.00 (25 January 2022): value = (DN + offset) / quantification.
S2_QUANTIFICATION = 10000.0
S2_OFFSET_SINCE_BASELINE_04 = -1000.0

S1_POLARIZATIONS: tuple[str, ...] = ("VV", "VH")

# BigEarthNet 19-class nomenclature (Sumbul et al. 2021), in its published order.
BEN19_CLASSES: tuple[str, ...] = (
    "Urban fabric",
    "Industrial or commercial units",
    "Arable land",
    "Permanent crops",
    "Pastures",
    "Complex cultivation patterns",
    "Land principally occupied by agriculture, with significant areas of natural vegetation",
    "Agro-forestry areas",
    "Broad-leaved forest",
    "Coniferous forest",
    "Mixed forest",
    "Natural grassland and sparsely vegetated areas",
    "Moors, heathland and sclerophyllous vegetation",
    "Transitional woodland, shrub",
    "Beaches, dunes, sands",
    "Inland wetlands",
    "Coastal wetlands",
    "Inland waters",
    "Marine waters",
)

# BigEarthNet patches are 1200 m x 1200 m: 120 px at 10 m, 60 at 20 m, 20 at 60 m.
BEN_PATCH_METRES = 1200


def _baseline_number(processing_baseline: str | None) -> float | None:
    if not processing_baseline:
        return None
    try:
        return float(processing_baseline)
    except ValueError as exc:
        raise ValueError(f"unparseable processing baseline {processing_baseline!r}") from exc


def baseline_offset(processing_baseline: str | None) -> float:
    """BOA_ADD_OFFSET / RADIO_ADD_OFFSET (DN) implied by a processing baseline string."""
    number = _baseline_number(processing_baseline)
    if number is None:
        return 0.0
    return S2_OFFSET_SINCE_BASELINE_04 if number >= 4.0 else 0.0


def radiometric_offset(
    processing_baseline: str | None,
    *,
    offset_applied: bool = False,
    band_offset_dn: float | None = None,
) -> float:
    """The one rule for a Sentinel-2 scene's BOA_ADD_OFFSET / RADIO_ADD_OFFSET, in DN.

    reflectance = (DN + offset) / quantification. First hit wins:

    1. ``offset_applied``: the service declares it already shifted the DNs back (Earth Search
       ``earthsearch:boa_offset_applied`` / ``sentinel:boa_offset_applied`` true; Earth
       Engine ``*_HARMONIZED``; Sentinel Hub ``harmonizeValues``) -> 0, whatever the band
       metadata says (Earth Search keeps ``offset: -0.1`` on such items).
    2. A processing baseline below 04.00 -> 0: those products have no offset, so band
       metadata claiming one (e.g. a collection-wide ``-0.1`` copied onto old items) is wrong.
    3. The band metadata (``raster:bands`` ``offset`` / ``scale``, converted to DN) -> it.
    4. The baseline rule: 04.00 or later -> -1000; baseline unknown -> 0.
    """
    if offset_applied:
        return 0.0
    number = _baseline_number(processing_baseline)
    if number is not None and number < 4.0:
        return 0.0
    if band_offset_dn is not None:
        return float(band_offset_dn) + 0.0  # no negative zero
    return baseline_offset(processing_baseline)
