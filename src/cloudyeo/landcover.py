"""ESA WorldCover classes and their remapping onto the six DeepGlobe land-cover classes.

The one place that says which WorldCover code becomes which Planet-CR class (the table of the
Planet-CR paper, "High-Resolution Cloud Removal with Multi-Modal and Multi-Resolution Data
Fusion"): the demo world, the builder, the store attributes, the dataset card and the tests all
read :data:`WORLDCOVER_TO_CLASS` from here.

======  ===========================  ===================
code    ESA WorldCover v200 class    Planet-CR class
======  ===========================  ===================
10      Tree cover                   forest
20      Shrubland                    rangeland
30      Grassland                    rangeland
40      Cropland                     agriculture
50      Built-up                     urban
60      Bare / sparse vegetation     barren
70      Snow and ice                 ignore (255)
80      Permanent water bodies       water
90      Herbaceous wetland           water
95      Mangroves                    ignore (255)
100     Moss and lichen              ignore (255)
0       no data                      ignore (255)
======  ===========================  ===================

Class indices follow the DeepGlobe Land Cover Classification order (urban, agriculture,
rangeland, forest, water, barren); 255 is the ignore index (``torch.nn.CrossEntropyLoss(
ignore_index=255)``). Any code not in the table (including WorldCover's nodata 0) maps to 255.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: ESA WorldCover (v100/v200) class codes and names.
WORLDCOVER_CLASSES: dict[int, str] = {
    10: "Tree cover",
    20: "Shrubland",
    30: "Grassland",
    40: "Cropland",
    50: "Built-up",
    60: "Bare / sparse vegetation",
    70: "Snow and ice",
    80: "Permanent water bodies",
    90: "Herbaceous wetland",
    95: "Mangroves",
    100: "Moss and lichen",
}
WORLDCOVER_NODATA = 0

#: The six Planet-CR (DeepGlobe) classes, in index order.
CLASSES: tuple[str, ...] = ("urban", "agriculture", "rangeland", "forest", "water", "barren")
IGNORE_INDEX = 255
IGNORE = "ignore"

#: WorldCover code -> Planet-CR class name (``"ignore"`` -> :data:`IGNORE_INDEX`).
WORLDCOVER_TO_CLASS: dict[int, str] = {
    10: "forest",
    20: "rangeland",
    30: "rangeland",
    40: "agriculture",
    50: "urban",
    60: "barren",
    70: IGNORE,
    80: "water",
    90: "water",
    95: IGNORE,
    100: IGNORE,
}

#: DeepGlobe's display colours (RGB) per class, for figures.
CLASS_COLOURS: dict[str, tuple[int, int, int]] = {
    "urban": (0, 255, 255),
    "agriculture": (255, 255, 0),
    "rangeland": (255, 0, 255),
    "forest": (0, 255, 0),
    "water": (0, 0, 255),
    "barren": (255, 255, 255),
}


def class_index(name: str) -> int:
    """Index of a class name; :data:`IGNORE_INDEX` for ``"ignore"``."""
    return IGNORE_INDEX if name == IGNORE else CLASSES.index(name)


def lookup_table() -> np.ndarray:
    """A 256-entry uint8 table: ``table[code]`` is the class index of a WorldCover code."""
    table = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    for code, name in WORLDCOVER_TO_CLASS.items():
        table[code] = class_index(name)
    return table


_TABLE = lookup_table()


def remap_worldcover(codes: np.ndarray) -> np.ndarray:
    """WorldCover codes (any integer dtype) -> Planet-CR class indices (uint8, 255 ignore)."""
    codes = np.asarray(codes)
    out = np.full(codes.shape, IGNORE_INDEX, dtype=np.uint8)
    ok = (codes >= 0) & (codes <= 255)
    out[ok] = _TABLE[codes[ok].astype(np.int64)]
    return out


def class_fractions(classes: np.ndarray) -> np.ndarray:
    """Fraction of each of the six classes among *all* pixels (ignored pixels count in the
    denominator, so the fractions sum to 1 - ignored fraction)."""
    classes = np.asarray(classes)
    n = max(classes.size, 1)
    counts = np.bincount(classes[classes < len(CLASSES)].ravel(), minlength=len(CLASSES))
    return (counts[: len(CLASSES)] / n).astype(np.float64)


def remap_table_attrs() -> dict[str, Any]:
    """The remap table in plain JSON types, for store attributes and dataset cards."""
    return {
        "classes": list(CLASSES),
        "ignore_index": IGNORE_INDEX,
        "worldcover_to_class": {str(code): name for code, name in WORLDCOVER_TO_CLASS.items()},
        "worldcover_to_index": {str(code): int(class_index(name))
                                for code, name in WORLDCOVER_TO_CLASS.items()},
        "worldcover_names": {str(code): name for code, name in WORLDCOVER_CLASSES.items()},
        "unlisted_codes": f"-> {IGNORE_INDEX} (including WorldCover nodata {WORLDCOVER_NODATA})",
    }


__all__ = [
    "CLASSES",
    "CLASS_COLOURS",
    "IGNORE",
    "IGNORE_INDEX",
    "WORLDCOVER_CLASSES",
    "WORLDCOVER_NODATA",
    "WORLDCOVER_TO_CLASS",
    "class_fractions",
    "class_index",
    "lookup_table",
    "remap_table_attrs",
    "remap_worldcover",
]
