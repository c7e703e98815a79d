"""Vision Transformer backbones in plain ``torch.nn`` for any number of input bands.

Layout of Dosovitskiy et al. (2021) with pre-norm blocks: a strided-convolution patch embedding,
a class token, position embeddings on the patch tokens, ``depth`` blocks of multi-head
self-attention + MLP (ratio 4, GELU), a final LayerNorm. ViT-S/16 is 384-d, 12 blocks, 6 heads.

Position embeddings are fixed 2-D sine-cosine by default (as in MoCo v3 and MAE), recomputed
exactly for whatever patch grid the input has; with ``pos_embed="learned"`` they are a
parameter built for ``img_size`` and bicubically interpolated for other grids. Any image whose
sides are multiples of the patch size is accepted.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cloudyeo.models.backbone import Backbone


def sincos_pos_embed(dim: int, grid_h: int, grid_w: int, device=None) -> torch.Tensor:
    """(grid_h * grid_w, dim) fixed 2-D sine-cosine embedding, row-major over the grid.

    Half the channels encode the row, half the column; each half is sin/cos at ``dim // 4``
    frequencies spaced geometrically from 1 to 1/10000.
    """
    if dim % 4:
        raise ValueError(f"sine-cosine position embedding needs dim divisible by 4, got {dim}")
    quarter = dim // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float64, device=device) / quarter)
    ys, xs = torch.meshgrid(
        torch.arange(grid_h, dtype=torch.float64, device=device),
        torch.arange(grid_w, dtype=torch.float64, device=device),
        indexing="ij",
    )
    ang_y = ys.reshape(-1, 1) * omega
    ang_x = xs.reshape(-1, 1) * omega
    emb = torch.cat([ang_y.sin(), ang_y.cos(), ang_x.sin(), ang_x.cos()], dim=1)
    return emb.float()


class DropPath(nn.Module):
    """Stochastic depth: drop a whole residual branch per sample with probability ``p``."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        shape = (x.shape[0],) + (1,) * (x.ndim - 1)
        return x * x.new_empty(shape).bernoulli_(keep) / keep


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, length, dim = x.shape
        qkv = self.qkv(x).reshape(n, length, 3, self.num_heads, dim // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (N, heads, L, head_dim)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(n, length, dim))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(LN(x)), then x + mlp(LN(x))."""

    def __init__(
        self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True,
        drop_path: float = 0.0, eps: float = 1e-6,
    ):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, num_heads, qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


def init_transformer_weights(module: nn.Module) -> None:
    """Xavier-uniform linears with zero bias, unit LayerNorms (call through ``Module.apply``)."""
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class VisionTransformer(Backbone):
    """ViT trunk without a classification layer.

    Args:
        in_chans: input bands.
        img_size: image side the (learned) position embedding is built for.
        patch_size: side of the square patches; image sides must be multiples of it.
        embed_dim, depth, num_heads, mlp_ratio, qkv_bias: transformer size.
        pos_embed: ``"sincos"`` (fixed, default) or ``"learned"``.
        pool: ``"cls"`` (class token) or ``"mean"`` (mean of patch tokens) for
            :meth:`forward_features`.
        drop_path: maximum stochastic-depth rate (linearly increasing over the blocks).
    """

    def __init__(
        self,
        in_chans: int = 3,
        img_size: int = 224,
        patch_size: int = 16,
        embed_dim: int = 384,
        depth: int = 12,
        num_heads: int = 6,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        pos_embed: str = "sincos",
        pool: str = "cls",
        drop_path: float = 0.0,
    ):
        super().__init__()
        if in_chans < 1:
            raise ValueError(f"in_chans must be >= 1, got {in_chans}")
        if img_size % patch_size:
            raise ValueError(f"img_size {img_size} is not a multiple of patch_size {patch_size}")
        if pos_embed not in ("sincos", "learned"):
            raise ValueError(f"pos_embed must be 'sincos' or 'learned', got {pos_embed!r}")
        if pool not in ("cls", "mean"):
            raise ValueError(f"pool must be 'cls' or 'mean', got {pool!r}")
        self.in_chans = in_chans
        self.img_size = img_size
        self.patch_size = patch_size
        self.embed_dim = self.out_dim = embed_dim
        self.num_heads = num_heads
        self.pos_embed_type = pos_embed
        self.pool = pool
        self.grid = (img_size // patch_size, img_size // patch_size)

        self.patch_embed = nn.Conv2d(in_chans, embed_dim, patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        # Position embedding of the patch tokens; the class token carries none.
        self.pos_embed = nn.Parameter(
            sincos_pos_embed(embed_dim, *self.grid).unsqueeze(0)
            if pos_embed == "sincos"
            else torch.zeros(1, self.grid[0] * self.grid[1], embed_dim),
            requires_grad=pos_embed == "learned",
        )
        rates = [drop_path * i / max(depth - 1, 1) for i in range(depth)]
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_ratio, qkv_bias, rates[i]) for i in range(depth)
        )
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)

        self.apply(init_transformer_weights)
        w = self.patch_embed.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        if self.patch_embed.bias is not None:
            nn.init.zeros_(self.patch_embed.bias)
        nn.init.normal_(self.cls_token, std=0.02)
        if pos_embed == "learned":
            nn.init.trunc_normal_(self.pos_embed, std=0.02)

    def grid_size(self, height: int, width: int) -> tuple[int, int]:
        p = self.patch_size
        if height % p or width % p:
            raise ValueError(f"image size {height}x{width} is not a multiple of patch size {p}")
        return height // p, width // p

    def position_embedding(self, grid_h: int, grid_w: int) -> torch.Tensor:
        """(1, grid_h * grid_w, D) position embedding for a patch grid."""
        if (grid_h, grid_w) == self.grid:
            return self.pos_embed
        if self.pos_embed_type == "sincos":
            emb = sincos_pos_embed(self.embed_dim, grid_h, grid_w, device=self.pos_embed.device)
            return emb.to(self.pos_embed.dtype).unsqueeze(0)
        gh, gw = self.grid
        table = self.pos_embed.reshape(1, gh, gw, -1).permute(0, 3, 1, 2)
        table = F.interpolate(table, size=(grid_h, grid_w), mode="bicubic", align_corners=False)
        return table.permute(0, 2, 3, 1).reshape(1, grid_h * grid_w, -1)

    def embed_patches(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """(N, C, H, W) -> patch tokens with position embedding (N, L, D) and the grid (gh, gw)."""
        grid = self.grid_size(x.shape[-2], x.shape[-1])
        tokens = self.patch_embed(x).flatten(2).transpose(1, 2)
        return tokens + self.position_embedding(*grid), grid

    def encode(self, tokens: torch.Tensor) -> torch.Tensor:
        """Prepend the class token to (N, L', D) tokens, run the blocks, final norm."""
        cls = self.cls_token.expand(tokens.shape[0], -1, -1)
        x = torch.cat([cls, tokens], dim=1)
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x)

    def forward_tokens(self, x: torch.Tensor, ids_keep: torch.Tensor | None = None) -> torch.Tensor:
        """(N, C, H, W) -> (N, 1 + L', D) normed tokens, class token first.

        ``ids_keep`` (N, L') selects which patch tokens enter the encoder (MAE's visible
        patches; indices into the row-major patch grid); all of them when None.
        """
        tokens, _ = self.embed_patches(x)
        if ids_keep is not None:
            index = ids_keep.unsqueeze(-1).expand(-1, -1, tokens.shape[-1])
            tokens = torch.gather(tokens, 1, index)
        return self.encode(tokens)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, out_dim): class token, or mean patch token with ``pool="mean"``."""
        t = self.forward_tokens(x)
        return t[:, 0] if self.pool == "cls" else t[:, 1:].mean(dim=1)

    def forward_grid(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, D, H / p, W / p) patch-token map (for dense heads)."""
        gh, gw = self.grid_size(x.shape[-2], x.shape[-1])
        t = self.forward_tokens(x)[:, 1:]
        return t.transpose(1, 2).reshape(x.shape[0], -1, gh, gw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)


def vit_s16(in_chans: int = 3, img_size: int = 224, **kw) -> VisionTransformer:
    """ViT-S/16: 384-d, 12 blocks, 6 heads, patch 16 (~21.7M parameters)."""
    kw = {"patch_size": 16, "embed_dim": 384, "depth": 12, "num_heads": 6, **kw}
    return VisionTransformer(in_chans=in_chans, img_size=img_size, **kw)


def vit_tiny(in_chans: int = 3, img_size: int = 64, **kw) -> VisionTransformer:
    """A small ViT for CPU demos: 192-d, 4 blocks, 3 heads, patch 8 (~1.8M parameters)."""
    kw = {"patch_size": 8, "embed_dim": 192, "depth": 4, "num_heads": 3, **kw}
    return VisionTransformer(in_chans=in_chans, img_size=img_size, **kw)
