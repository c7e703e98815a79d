"""Cloud masks computed once and stored: s2cloudless on L1C, and their quality against truth.

* :mod:`cloudyeo.masks.s2cloudless` - :class:`CloudMaskParams`, :func:`compute_cloud_masks`
  (10 m L1C reflectance -> uint8 probability + bool mask, detector at a working resolution),
  :func:`run_s2cloudless` + :func:`to_output_resolution` (bands read at the working
  resolution directly), :func:`detector_attrs` / :func:`probability_attrs` / :func:`mask_attrs`;
* :mod:`cloudyeo.masks.l1c` - :func:`read_l1c_reflectance` (a scene's bands on one grid as
  reflectance), :func:`read_truth` (demo world);
* :mod:`cloudyeo.masks.quality` - accumulable count tables and IoU/precision/recall per truth
  class (thick cloud, thin cloud, shadow, cloud, cloud or shadow).

``s2cloudless`` (and LightGBM, OpenCV) are imported on first use, not with this package.
"""

from cloudyeo.masks.l1c import dn_to_reflectance, read_l1c_reflectance, read_truth
from cloudyeo.masks.quality import (
    CATEGORIES,
    CLASSES,
    confusion_counts,
    format_metrics,
    mask_metrics,
    truth_categories,
)
from cloudyeo.masks.s2cloudless import (
    DETECTOR_NAME,
    MODEL_BANDS,
    PROBABILITY_NODATA,
    PROBABILITY_SCALE,
    CloudMaskParams,
    compute_cloud_masks,
    decode_probability,
    detector_attrs,
    encode_probability,
    mask_attrs,
    probability_attrs,
    run_s2cloudless,
    to_output_resolution,
)

__all__ = [
    "CATEGORIES",
    "CLASSES",
    "DETECTOR_NAME",
    "MODEL_BANDS",
    "PROBABILITY_NODATA",
    "PROBABILITY_SCALE",
    "CloudMaskParams",
    "compute_cloud_masks",
    "confusion_counts",
    "decode_probability",
    "detector_attrs",
    "dn_to_reflectance",
    "encode_probability",
    "format_metrics",
    "mask_attrs",
    "mask_metrics",
    "probability_attrs",
    "read_l1c_reflectance",
    "read_truth",
    "run_s2cloudless",
    "to_output_resolution",
    "truth_categories",
]
