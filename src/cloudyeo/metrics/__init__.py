"""One metrics library for the three benchmarks, each definition written down where it lives.

* :mod:`.image` — cloud removal: NRMSE, PSNR, SSIM, SAM, MAE (masked or not), per image or batch.
* :mod:`.regions` — the cloudy / clear regions masked metrics are computed on (the cloud
  masks themselves come from :mod:`cloudyeo.masks`).
* :mod:`.aggregate` — per-method / per-class / per-cloud-bin tables of per-sample records.
* :mod:`.segmentation` — confusion matrix with ignore index, mIoU, pixel accuracy, per-class IoU.
* :mod:`.binary` — cloud-mask precision, recall, F1, balanced accuracy, IoU from counts.
* :mod:`.classification` — dataset-level micro / macro / per-class average precision.
* :mod:`.losses` — differentiable torch SSIM and masked L1 (imports torch lazily; import it
  from ``cloudyeo.metrics.losses``).
"""

from cloudyeo.metrics.aggregate import (
    DEFAULT_CLOUD_BIN_EDGES,
    aggregate,
    cloud_bin_label,
    cloud_bin_labels,
    cloud_bins,
)
from cloudyeo.metrics.binary import BinaryCounts, binary_counts, binary_metrics, binary_scores
from cloudyeo.metrics.classification import (
    AveragePrecisionAccumulator,
    average_precision,
    binary_average_precision,
)
from cloudyeo.metrics.image import (
    METRIC_NAMES,
    batch_image_metrics,
    image_metrics,
    mae,
    nrmse,
    psnr,
    region_image_metrics,
    sam,
    ssim,
    ssim_map,
)
from cloudyeo.metrics.regions import cloud_fraction, cloud_region_masks
from cloudyeo.metrics.segmentation import (
    IGNORE_INDEX,
    confusion_matrix,
    f1_scores,
    segmentation_metrics,
    segmentation_scores,
)

__all__ = [
    "f1_scores",
    "DEFAULT_CLOUD_BIN_EDGES",
    "IGNORE_INDEX",
    "METRIC_NAMES",
    "AveragePrecisionAccumulator",
    "BinaryCounts",
    "aggregate",
    "average_precision",
    "batch_image_metrics",
    "region_image_metrics",
    "binary_average_precision",
    "binary_counts",
    "binary_metrics",
    "binary_scores",
    "cloud_bin_label",
    "cloud_bin_labels",
    "cloud_bins",
    "cloud_fraction",
    "cloud_region_masks",
    "confusion_matrix",
    "image_metrics",
    "mae",
    "nrmse",
    "psnr",
    "sam",
    "segmentation_metrics",
    "segmentation_scores",
    "ssim",
    "ssim_map",
]
