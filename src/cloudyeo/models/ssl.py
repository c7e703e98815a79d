"""Self-supervised pretraining methods: MoCo v2, MoCo v3 and MAE.

Every method is an ``nn.Module`` with

* ``backbone`` -- the encoder a downstream model is initialised from
  (``method.backbone.state_dict()``);
* ``loss(view1, view2) -> (loss, logs)`` -- a scalar to backpropagate and a dict of floats to log
  (MAE uses only ``view1``);
* ``momentum_update(m=None, *, step=None, total_steps=None)`` -- called by the training loop
  after each ``optimizer.step()``; it moves the momentum (key) encoder towards the online one
  (a no-op for MAE). Momentum parameters have ``requires_grad=False`` and never reach an
  optimizer: pass ``method.trainable_parameters()`` or filter on ``requires_grad``.

The methods are written for one process (one GPU or CPU): keys are not gathered across
processes. MoCo v2's "shuffling BN" is emulated with ``bn_splits`` (BatchNorm statistics
computed on disjoint sub-batches, keys in a shuffled order), as a single-GPU stand-in.

References: Chen et al. 2020, "Improved Baselines with Momentum Contrastive Learning" (MoCo v2);
Chen, Xie & He 2021, "An Empirical Study of Training Self-Supervised Vision Transformers"
(MoCo v3); He et al. 2022, "Masked Autoencoders Are Scalable Vision Learners" (MAE).
"""

from __future__ import annotations

import copy
import math
from typing import Any, TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from cloudyeo.models.backbone import Backbone
from cloudyeo.models.registry import build_backbone
from cloudyeo.models.vit import (
    Block,
    VisionTransformer,
    init_transformer_weights,
    sincos_pos_embed,
)


def mlp(
    in_dim: int, hidden_dim: int, out_dim: int, num_layers: int = 2,
    batch_norm: bool = True, last_bn: bool = False,
) -> nn.Sequential:
    """Linear-(BN)-ReLU x (num_layers - 1), then Linear (+ a non-affine BN when ``last_bn``)."""
    if num_layers < 1:
        raise ValueError(f"num_layers must be >= 1, got {num_layers}")
    layers: list[nn.Module] = []
    dim = in_dim
    for _ in range(num_layers - 1):
        layers.append(nn.Linear(dim, hidden_dim, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm1d(hidden_dim))
        layers.append(nn.ReLU(inplace=True))
        dim = hidden_dim
    layers.append(nn.Linear(dim, out_dim, bias=not last_bn))
    if last_bn:
        layers.append(nn.BatchNorm1d(out_dim, affine=False))
    return nn.Sequential(*layers)


def cosine_momentum(step: int, total_steps: int, base: float = 0.99, final: float = 1.0) -> float:
    """Momentum rising from ``base`` at step 0 to ``final`` at ``total_steps`` on a half cosine."""
    if total_steps <= 0:
        return final
    t = min(max(step / total_steps, 0.0), 1.0)
    return final - (final - base) * (math.cos(math.pi * t) + 1) / 2


ModuleT = TypeVar("ModuleT", bound=nn.Module)


def _frozen_copy(module: ModuleT) -> ModuleT:
    clone = copy.deepcopy(module)
    for p in clone.parameters():
        p.requires_grad_(False)
    return clone


@torch.no_grad()
def _ema_(target: nn.Module, source: nn.Module, m: float) -> None:
    """target <- m * target + (1 - m) * source, parameter by parameter."""
    t_params: list[torch.Tensor] = list(target.parameters())
    s_params = [p.detach() for p in source.parameters()]
    if len(t_params) != len(s_params):
        raise RuntimeError("momentum encoder and online encoder have different parameters")
    torch._foreach_mul_(t_params, m)
    torch._foreach_add_(t_params, s_params, alpha=1.0 - m)


def _full_precision(x: torch.Tensor):
    """Disable autocast (bf16 on CUDA) for similarity logits and losses."""
    return torch.autocast(device_type=x.device.type, enabled=False)


class SSLMethod(nn.Module):
    """Common interface; see the module docstring."""

    backbone: Backbone
    spec: dict[str, Any]  # build_ssl's arguments

    def loss(self, view1: torch.Tensor, view2: torch.Tensor | None = None):
        raise NotImplementedError

    def forward(self, *args: Any, **kwargs: Any):
        """``loss(view1, view2)``; a method may give ``forward`` its own signature (MAE)."""
        return self.loss(*args, **kwargs)

    def momentum_update(self, m: float | None = None, *, step: int | None = None,
                        total_steps: int | None = None) -> float | None:
        return None

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]


def _features(backbone: Backbone, head: nn.Module, x: torch.Tensor, splits: int) -> torch.Tensor:
    """head(backbone(x)) with BatchNorm statistics over ``splits`` disjoint sub-batches."""
    if splits <= 1:
        return head(backbone.forward_features(x))
    return torch.cat([head(backbone.forward_features(c)) for c in x.chunk(splits)])


class MoCoV2(SSLMethod):
    """MoCo v2: query encoder + momentum key encoder, a queue of negative keys, InfoNCE.

    Args:
        backbone: the query backbone (``out_dim``, ``forward_features``).
        dim: output dimension of the projection head (128).
        hidden_dim: hidden width of the 2-layer MLP head (2048 in the paper).
        queue_size: number of negative keys kept (65536); any size, independent of the batch.
        momentum: key-encoder momentum (0.999).
        temperature: InfoNCE temperature (0.2).
        bn_splits: compute BatchNorm statistics on this many sub-batches, keys shuffled
            across them (single-process shuffling BN); 1 disables it.
        symmetric: also use (view2 -> view1) as a query/key pair (both keys are enqueued).
    """

    queue: torch.Tensor  # buffers
    queue_ptr: torch.Tensor

    def __init__(
        self, backbone: Backbone, dim: int = 128, hidden_dim: int = 2048,
        queue_size: int = 65536, momentum: float = 0.999, temperature: float = 0.2,
        bn_splits: int = 1, symmetric: bool = False,
    ):
        super().__init__()
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        self.momentum = momentum
        self.temperature = temperature
        self.bn_splits = bn_splits
        self.symmetric = symmetric
        self.backbone = backbone
        self.projector = mlp(backbone.out_dim, hidden_dim, dim, 2, batch_norm=False)
        self.momentum_backbone = _frozen_copy(backbone)
        self.momentum_projector = _frozen_copy(self.projector)
        self.register_buffer("queue", F.normalize(torch.randn(queue_size, dim), dim=1))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))

    @property
    def queue_size(self) -> int:
        return self.queue.shape[0]

    @torch.no_grad()
    def momentum_update(self, m=None, *, step=None, total_steps=None) -> float:
        m = self.momentum if m is None else m
        _ema_(self.momentum_backbone, self.backbone, m)
        _ema_(self.momentum_projector, self.projector, m)
        return m

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        """Write ``keys`` (n, dim) at the queue pointer, wrapping around; oldest keys go first.

        A batch larger than the queue keeps only its last ``queue_size`` keys.
        """
        size = self.queue_size
        n = keys.shape[0]
        ptr = int(self.queue_ptr)
        idx = (ptr + torch.arange(n, device=self.queue.device)) % size
        self.queue[idx[-size:]] = keys[-size:].to(self.queue.dtype)
        self.queue_ptr.fill_((ptr + n) % size)

    @torch.no_grad()
    def _keys(self, x: torch.Tensor) -> torch.Tensor:
        splits = min(self.bn_splits, x.shape[0])
        if splits <= 1:
            k = _features(self.momentum_backbone, self.momentum_projector, x, 1)
        else:
            perm = torch.randperm(x.shape[0], device=x.device)
            k = _features(self.momentum_backbone, self.momentum_projector, x[perm], splits)
            k = k[torch.argsort(perm)]
        return F.normalize(k.float(), dim=1)

    def _infonce(self, q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with _full_precision(q):
            return self._infonce_fp32(q.float(), k.float())

    def _infonce_fp32(self, q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        l_pos = (q * k).sum(dim=1, keepdim=True)
        l_neg = q @ self.queue.detach().clone().t()  # clone: enqueue() later writes in place
        logits = torch.cat([l_pos, l_neg], dim=1) / self.temperature
        labels = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)
        acc = (logits.argmax(dim=1) == 0).float().mean()
        return F.cross_entropy(logits, labels), acc

    def loss(self, view1, view2=None):
        if view2 is None:
            raise ValueError("MoCo v2 needs two views")
        splits = min(self.bn_splits, view1.shape[0])
        q1 = F.normalize(_features(self.backbone, self.projector, view1, splits).float(), dim=1)
        k2 = self._keys(view2)
        loss, acc = self._infonce(q1, k2)
        keys = [k2]
        if self.symmetric:
            q2 = F.normalize(_features(self.backbone, self.projector, view2, splits).float(), dim=1)
            k1 = self._keys(view1)
            loss2, acc2 = self._infonce(q2, k1)
            loss, acc = (loss + loss2) / 2, (acc + acc2) / 2
            keys.append(k1)
        if self.training:
            for k in keys:
                self.enqueue(k)
        return loss, {"loss": float(loss.detach()), "acc1": float(acc)}


class MoCoV3(SSLMethod):
    """MoCo v3: backbone + projection MLP + predictor MLP, momentum encoder, no queue.

    The loss is symmetric, ``ctr(q1, k2) + ctr(q2, k1)`` with in-batch negatives, where
    ``ctr`` is InfoNCE scaled by ``2 * temperature``. The momentum follows
    :func:`cosine_momentum` from ``base_momentum`` to ``final_momentum`` when
    :meth:`momentum_update` is given ``step`` and ``total_steps``.

    Args:
        dim: output dimension (256); hidden_dim: MLP width (4096).
        proj_layers: 3 for ViT, 2 for ResNet in the paper; pred_layers: 2.
        temperature: 0.2 for ViT (1.0 for ResNet in the paper).
    """

    def __init__(
        self, backbone: Backbone, dim: int = 256, hidden_dim: int = 4096,
        proj_layers: int = 3, pred_layers: int = 2, temperature: float = 0.2,
        base_momentum: float = 0.99, final_momentum: float = 1.0,
    ):
        super().__init__()
        self.temperature = temperature
        self.base_momentum = base_momentum
        self.final_momentum = final_momentum
        self.backbone = backbone
        self.projector = mlp(backbone.out_dim, hidden_dim, dim, proj_layers, last_bn=True)
        self.predictor = mlp(dim, hidden_dim, dim, pred_layers, last_bn=False)
        self.momentum_backbone = _frozen_copy(backbone)
        self.momentum_projector = _frozen_copy(self.projector)

    def momentum_at(self, step: int, total_steps: int) -> float:
        return cosine_momentum(step, total_steps, self.base_momentum, self.final_momentum)

    @torch.no_grad()
    def momentum_update(self, m=None, *, step=None, total_steps=None) -> float:
        if m is None:
            m = self.momentum_at(step, total_steps) if step is not None else self.base_momentum
        _ema_(self.momentum_backbone, self.backbone, m)
        _ema_(self.momentum_projector, self.projector, m)
        return m

    def _contrast(self, q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with _full_precision(q):
            q = F.normalize(q.float(), dim=1)
            k = F.normalize(k.float(), dim=1)
            logits = q @ k.t() / self.temperature
            labels = torch.arange(q.shape[0], device=q.device)
            acc = (logits.argmax(dim=1) == labels).float().mean()
            return F.cross_entropy(logits, labels) * (2 * self.temperature), acc

    def loss(self, view1, view2=None):
        if view2 is None:
            raise ValueError("MoCo v3 needs two views")
        q1 = self.predictor(self.projector(self.backbone.forward_features(view1)))
        q2 = self.predictor(self.projector(self.backbone.forward_features(view2)))
        with torch.no_grad():
            k1 = self.momentum_projector(self.momentum_backbone.forward_features(view1))
            k2 = self.momentum_projector(self.momentum_backbone.forward_features(view2))
        l12, a12 = self._contrast(q1, k2)
        l21, a21 = self._contrast(q2, k1)
        loss = l12 + l21
        return loss, {"loss": float(loss.detach()), "acc1": float((a12 + a21) / 2)}


class MAE(SSLMethod):
    """Masked autoencoder on a :class:`VisionTransformer`.

    The encoder sees a random ``1 - mask_ratio`` share of the patches; a light transformer
    decoder gets the encoded visible tokens plus a shared mask token at every masked position
    (with fixed sine-cosine positions) and predicts each patch's pixels (all bands). The loss is
    the mean squared error on masked patches only, against per-patch normalised pixels
    (``norm_pix_loss``: each patch minus its mean, over its standard deviation).

    Args:
        mask_ratio: share of patches hidden (0.7 in the CBEN setting; 0.75 in the MAE paper).
        decoder_dim, decoder_depth, decoder_heads: decoder size (the paper's default decoder
            is 512-d x 8 blocks; the lighter 256-d x 4 default suits ViT-S).
    """

    backbone: VisionTransformer

    def __init__(
        self, backbone: VisionTransformer, mask_ratio: float = 0.7, decoder_dim: int = 256,
        decoder_depth: int = 4, decoder_heads: int = 8, norm_pix_loss: bool = True,
    ):
        super().__init__()
        if not isinstance(backbone, VisionTransformer):
            raise TypeError("MAE needs a VisionTransformer backbone")
        if not 0.0 <= mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in [0, 1), got {mask_ratio}")
        self.backbone = backbone
        self.mask_ratio = mask_ratio
        self.norm_pix_loss = norm_pix_loss
        self.patch_size = backbone.patch_size
        self.in_chans = backbone.in_chans
        self.decoder_dim = decoder_dim
        self.decoder_embed = nn.Linear(backbone.embed_dim, decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        self.decoder_blocks = nn.ModuleList(
            Block(decoder_dim, decoder_heads) for _ in range(decoder_depth)
        )
        self.decoder_norm = nn.LayerNorm(decoder_dim, eps=1e-6)
        self.decoder_pred = nn.Linear(decoder_dim, self.patch_size**2 * self.in_chans)
        for m in (self.decoder_embed, self.decoder_blocks, self.decoder_norm, self.decoder_pred):
            m.apply(init_transformer_weights)
        nn.init.normal_(self.mask_token, std=0.02)

    def patchify(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, L, p*p*C), patches row-major, pixels (row, col, band) inside."""
        n, c, h, w = x.shape
        p = self.patch_size
        gh, gw = h // p, w // p
        x = x.reshape(n, c, gh, p, gw, p).permute(0, 2, 4, 3, 5, 1)
        return x.reshape(n, gh * gw, p * p * c)

    def unpatchify(self, patches: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """Inverse of :meth:`patchify`: (N, L, p*p*C) -> (N, C, H, W)."""
        n = patches.shape[0]
        p, c = self.patch_size, self.in_chans
        gh, gw = grid
        x = patches.reshape(n, gh, gw, p, p, c).permute(0, 5, 1, 3, 2, 4)
        return x.reshape(n, c, gh * p, gw * p)

    def num_visible(self, num_patches: int, mask_ratio: float | None = None) -> int:
        ratio = self.mask_ratio if mask_ratio is None else mask_ratio
        return max(1, int(num_patches * (1 - ratio)))

    def random_masking(
        self, n: int, num_patches: int, device, mask_ratio: float | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample random subset of visible patches.

        Returns ``ids_keep`` (N, K) sorted patch indices to encode and ``mask`` (N, L) float,
        1 where a patch is hidden.
        """
        keep = self.num_visible(num_patches, mask_ratio)
        gen_device = generator.device if generator is not None else device
        noise = torch.rand(n, num_patches, generator=generator, device=gen_device).to(device)
        ids_keep = torch.argsort(noise, dim=1)[:, :keep].sort(dim=1).values
        mask = torch.ones(n, num_patches, device=device)
        mask.scatter_(1, ids_keep, 0.0)
        return ids_keep, mask

    def _decode(self, latent: torch.Tensor, ids_keep: torch.Tensor, grid: tuple[int, int]):
        n = latent.shape[0]
        num_patches = grid[0] * grid[1]
        x = self.decoder_embed(latent)
        cls, visible = x[:, :1], x[:, 1:]
        full = self.mask_token.to(x.dtype).expand(n, num_patches, -1)
        index = ids_keep.unsqueeze(-1).expand(-1, -1, x.shape[-1])
        full = full.scatter(1, index, visible)
        pos = sincos_pos_embed(self.decoder_dim, *grid, device=x.device).to(x.dtype)
        x = torch.cat([cls, full + pos.unsqueeze(0)], dim=1)
        for blk in self.decoder_blocks:
            x = blk(x)
        return self.decoder_pred(self.decoder_norm(x))[:, 1:]

    def forward(self, x: torch.Tensor, mask_ratio: float | None = None,
                generator: torch.Generator | None = None):
        """(N, C, H, W) -> (loss, pred (N, L, p*p*C), mask (N, L) with 1 = hidden)."""
        grid = self.backbone.grid_size(x.shape[-2], x.shape[-1])
        ids_keep, mask = self.random_masking(
            x.shape[0], grid[0] * grid[1], x.device, mask_ratio, generator
        )
        latent = self.backbone.forward_tokens(x, ids_keep)
        pred = self._decode(latent, ids_keep, grid)
        with _full_precision(x):
            target = self.patchify(x).float()
            if self.norm_pix_loss:
                mean = target.mean(dim=-1, keepdim=True)
                var = target.var(dim=-1, keepdim=True)
                target = (target - mean) / (var + 1e-6).sqrt()
            per_patch = ((pred.float() - target) ** 2).mean(dim=-1)
            loss = (per_patch * mask).sum() / mask.sum().clamp_min(1.0)
        return loss, pred, mask

    def loss(self, view1, view2=None):
        loss, _, mask = self(view1)
        return loss, {"loss": float(loss.detach()), "mask_ratio": float(mask.mean())}


SSL_METHODS = ("moco2", "moco3", "mae")


def build_ssl(method: str, backbone_name: str, in_chans: int,
              backbone_kwargs: dict | None = None, **hparams) -> SSLMethod:
    """Build an SSL method around a registry backbone.

    ``backbone_kwargs`` go to :func:`build_backbone`; ``hparams`` to the method's constructor.
    MoCo v3 defaults follow the paper per backbone kind: 3-layer projector and temperature 0.2
    for ViTs, 2-layer projector and temperature 1.0 for ResNets. The arguments are kept on the
    result as ``.spec`` so a checkpoint records how to rebuild it.
    """
    if method not in SSL_METHODS:
        raise ValueError(f"unknown SSL method {method!r}; known methods: {', '.join(SSL_METHODS)}")
    backbone_kwargs = dict(backbone_kwargs or {})
    backbone = build_backbone(backbone_name, in_chans, **backbone_kwargs)
    if method == "moco2":
        model: SSLMethod = MoCoV2(backbone, **hparams)
    elif method == "moco3":
        vit = isinstance(backbone, VisionTransformer)
        defaults = {"proj_layers": 3, "temperature": 0.2} if vit else {"proj_layers": 2, "temperature": 1.0}
        model = MoCoV3(backbone, **{**defaults, **hparams})
    else:
        if not isinstance(backbone, VisionTransformer):
            raise ValueError(f"MAE needs a ViT backbone, got {backbone_name!r}")
        model = MAE(backbone, **hparams)
    model.spec = {
        "method": method, "backbone": backbone_name, "in_chans": in_chans,
        "backbone_kwargs": backbone_kwargs, "hparams": dict(hparams),
    }
    return model
