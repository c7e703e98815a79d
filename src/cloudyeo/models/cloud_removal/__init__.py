"""Cloud-removal networks in plain ``torch.nn``, built by architecture name.

>>> net = build_cr_model({"arch": "dsen2cr", "width": 32, "blocks": 4})
>>> net.spec["arch"]
'dsen2cr'

| arch | module | task |
|---|---|---|
| ``dsen2cr`` | :mod:`.dsen2cr` | cloudy S2 + S1 -> clear S2 (residual ResNet, CARL loss) |
| ``seq2point`` | :mod:`.seq2point` | n cloudy S2 (+ S1) time points -> one clear S2 |
| ``unet3d`` | :mod:`.seq2seq` | S1 (or noise) sequence -> S2 sequence, internal learning |
| ``hcrlc`` | :mod:`.hcrlc` | cloud removal + land cover (multi-task U-Net), LC-only, CR-only |
| ``pretext`` | :mod:`.hcrlc` | which S1 neighbour (N/W/S/E) pairs with the S2 patch |
| ``segunet`` | :mod:`.segmentation` | optical -> land-cover classes |
| ``aligncr`` | :mod:`.aligncr` | cloudy 3 m optical + 10 m SAR -> clear optical (deformable alignment) |

The spec (a plain dict) is kept on the model as ``.spec`` and saved with every checkpoint, so
:func:`build_cr_model` rebuilds the network from a checkpoint alone.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from cloudyeo.models.cloud_removal.aligncr import AlignCR, weighted_charbonnier
from cloudyeo.models.cloud_removal.dsen2cr import DSen2CR, carl_loss
from cloudyeo.models.cloud_removal.hcrlc import (
    PRETEXT_DIRECTIONS,
    PRETEXT_SHIFTS,
    HCRLCNet,
    PretextNet,
    UncertaintyWeighting,
)
from cloudyeo.models.cloud_removal.segmentation import SegUNet
from cloudyeo.models.cloud_removal.seq2point import Seq2Point, seq2point_loss
from cloudyeo.models.cloud_removal.seq2seq import UNet3D, clear_pixel_l1, noise_input

_ARCHS: dict[str, Callable[..., nn.Module]] = {
    "dsen2cr": DSen2CR,
    "seq2point": Seq2Point,
    "unet3d": UNet3D,
    "hcrlc": HCRLCNet,
    "pretext": PretextNet,
    "segunet": SegUNet,
    "aligncr": AlignCR,
}


def list_cr_archs() -> list[str]:
    return sorted(_ARCHS)


def build_cr_model(spec: dict) -> nn.Module:
    """Build ``spec["arch"]`` with the remaining keys as constructor arguments."""
    spec = dict(spec)
    arch = spec.pop("arch", None)
    if arch not in _ARCHS:
        raise ValueError(f"unknown cloud-removal architecture {arch!r}; known: {', '.join(list_cr_archs())}")
    if "tasks" in spec:
        spec["tasks"] = tuple(spec["tasks"])
    model = _ARCHS[arch](**spec)
    model.spec = {"arch": arch, **spec}  # type: ignore[assignment]  # Module.__setattr__ stub too narrow
    return model


__all__ = [
    "PRETEXT_DIRECTIONS", "PRETEXT_SHIFTS", "AlignCR", "DSen2CR", "HCRLCNet", "PretextNet", "SegUNet",
    "Seq2Point", "UNet3D", "UncertaintyWeighting", "build_cr_model", "carl_loss", "clear_pixel_l1",
    "list_cr_archs", "noise_input", "seq2point_loss", "weighted_charbonnier",
]
