"""Training plumbing: SSL augmentations, the normalisation spec, seeds/devices/checkpoints."""

from cloudyeo.training.augment import (
    MultibandAugment,
    optical_channels_from_bands,
    two_views,
)
from cloudyeo.training.cloud_removal import train as train_cloud_removal
from cloudyeo.training.cloud_removal_eval import evaluate as evaluate_cloud_removal
from cloudyeo.training.evaluate import evaluate as evaluate_cben
from cloudyeo.training.experiments import experiment_params
from cloudyeo.training.finetune import finetune as finetune_cben
from cloudyeo.training.normalization import (
    NormalizationSpec,
    RunningBandStats,
    compute_normalization,
)
from cloudyeo.training.pretrain import pretrain as pretrain_ssl
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
    "compute_normalization", "epoch_checkpoint_path", "evaluate_cloud_removal", "train_cloud_removal", "latest_checkpoint", "load_checkpoint",
    "optical_channels_from_bands", "prepare_model", "resume_state", "save_checkpoint",
    "save_epoch_checkpoint", "seed_everything", "select_device", "to_device", "two_views",
    "evaluate_cben", "experiment_params", "finetune_cben", "pretrain_ssl",
]
