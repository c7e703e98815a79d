"""Training plumbing: SSL augmentations, the normalisation spec, seeds/devices/checkpoints."""

from cloudyeo.training.augment import (
    MultibandAugment,
    optical_channels_from_bands,
    two_views,
)
from cloudyeo.training.normalization import (
    NormalizationSpec,
    RunningBandStats,
    compute_normalization,
)
from cloudyeo.training.runtime import (
    MetricsLogger,
    autocast,
    epoch_checkpoint_path,
    latest_checkpoint,
    load_checkpoint,
    prepare_model,
    resume_state,
    save_checkpoint,
    save_epoch_checkpoint,
    seed_everything,
    select_device,
    to_device,
)

__all__ = [
    "MetricsLogger", "MultibandAugment", "NormalizationSpec", "RunningBandStats", "autocast",
    "compute_normalization", "epoch_checkpoint_path", "latest_checkpoint", "load_checkpoint",
    "optical_channels_from_bands", "prepare_model", "resume_state", "save_checkpoint",
    "save_epoch_checkpoint", "seed_everything", "select_device", "to_device", "two_views",
]
