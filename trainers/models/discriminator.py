"""TransGAN discriminators: the v1 ViT D and the v2 multi-scale D. D(x) -> (N,) raw scores;
with ``model.d.pixel_clusters`` = K, D(x, y) also takes each image's cluster (see clusters.py).

Augmentation is not inside D: the loss functions apply it (also to the gradient-penalty inputs).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import Block, make_norm
from .clusters import ClusterProjection


def init_transgan_d(module: nn.Module) -> None:
    """Linear trunc-normal 0.02 with zero bias; LayerNorm 1/0; convs xavier-uniform (gain 1)."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Conv2d):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class _Scored(nn.Module):
    """The score on D's normalised [cls] feature h: head(h), plus <embed(y), h> when D has clusters."""

    head: nn.Linear
    clusters: ClusterProjection | None

    def score(self, h: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        out = self.head(h).squeeze(1)
        if self.clusters is None:
            if y is not None:
                raise ValueError("this discriminator has no clusters (model.d.pixel_clusters=0); call D(x)")
            return out
        if y is None:
            raise ValueError("this discriminator is conditioned on clusters (model.d.pixel_clusters>0); call D(x, y)")
        return out + self.clusters(h, y)


class ViTDiscriminator(_Scored):
    """v1: conv patch embedding -> [cls] + pos-embed -> depth blocks -> norm -> Linear on [cls]."""

    def __init__(
        self,
        *,
        resolution: int,  # image side
        channels: int,  # image channels
        patch_size: int,  # patch side (CIFAR 4 -> 8x8 = 64 patches)
        embed_dim: int,  # token width
        depth: int,  # transformer blocks
        heads: int = 4,  # attention heads
        mlp_ratio: float = 4.0,  # MLP hidden / width
        norm: str = "ln",  # "ln" | "pn"
        act: str = "gelu",  # "gelu" | "leakyrelu"
        rel_pos_bias: bool = False,  # relative bias over the patch grid ([cls] gets zero bias)
        noise_injection: bool = False,  # per-token noise before qkv
        clusters: int = 0,  # K > 0: D(x, y) adds a projection term for cluster y (pixel k-means)
    ):
        super().__init__()
        if resolution % patch_size:
            raise ValueError(f"model.d.patch_size={patch_size} must divide data.resolution={resolution}")
        self.side = resolution // patch_size
        self.patch_embed = nn.Conv2d(channels, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, self.side**2 + 1, embed_dim))
        self.blocks = nn.ModuleList(
            Block(
                dim=embed_dim,
                heads=heads,
                mlp_ratio=mlp_ratio,
                norm=norm,
                act=act,
                side=self.side,
                rel_pos_bias=rel_pos_bias,
                prefix_tokens=1,
                noise_injection=noise_injection,
            )
            for _ in range(depth)
        )
        self.norm = make_norm(norm, embed_dim)
        self.head = nn.Linear(embed_dim, 1)
        self.apply(init_transgan_d)
        self.clusters = (
            ClusterProjection(clusters=clusters, features=channels * resolution**2, dim=embed_dim) if clusters else None
        )
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        B = x.shape[0]
        x = self.patch_embed(x).flatten(2).transpose(1, 2)  # (B, side^2, C)
        x = torch.cat([self.cls_token.expand(B, -1, -1), x], dim=1) + self.pos_embed  # (B, 1 + side^2, C)
        for blk in self.blocks:
            x = blk(x)
        return self.score(self.norm(x[:, 0]), y)


class MultiScaleDiscriminator(_Scored):
    """v2: two patch scales of the same image, late [cls] token, relative bias, noise injection.

    fine branch: Conv k=s=p -> (H/p)^2 tokens x 3C/4 (+pos) -> depth blocks
    -> map -> AvgPool 2 -> concat with coarse branch Conv k=s=2p (C/4) -> (H/2p)^2 x C (+pos) -> depth blocks
    -> prepend [cls] -> one final block (no relative bias; noise injection like the others, as the
    official ViT_custom_scale2_rp_noise) -> norm -> Linear on [cls].
    """

    def __init__(
        self,
        *,
        resolution: int,  # image side
        channels: int,  # image channels
        patch_size: int,  # fine patch side (coarse = 2x)
        embed_dim: int,  # width after the concat (fine branch 3/4, coarse 1/4)
        depth: int,  # blocks per scale stage
        heads: int = 4,  # attention heads
        mlp_ratio: float = 4.0,  # MLP hidden / width
        norm: str = "ln",  # "ln" | "pn"
        act: str = "gelu",  # "gelu" | "leakyrelu"
        rel_pos_bias: bool = True,  # relative bias in the two scale stages
        noise_injection: bool = True,  # per-token noise before qkv in the two scale stages
        clusters: int = 0,  # K > 0: D(x, y) adds a projection term for cluster y (pixel k-means)
    ):
        super().__init__()
        if resolution % (2 * patch_size):
            raise ValueError(
                f"model.d.patch_size={patch_size}: data.resolution={resolution} must divide by {2 * patch_size}"
            )
        if embed_dim % 4:
            raise ValueError(f"model.d.embed_dim={embed_dim} must be a multiple of 4 (split 3/4 + 1/4)")
        fine, coarse = embed_dim * 3 // 4, embed_dim // 4
        self.side1 = resolution // patch_size
        self.side2 = self.side1 // 2
        self.fine_dim = fine
        self.embed1 = nn.Conv2d(channels, fine, kernel_size=patch_size, stride=patch_size)
        self.embed2 = nn.Conv2d(channels, coarse, kernel_size=2 * patch_size, stride=2 * patch_size)
        self.pos1 = nn.Parameter(torch.zeros(1, self.side1**2, fine))
        self.pos2 = nn.Parameter(torch.zeros(1, self.side2**2, embed_dim))
        common = dict(heads=heads, mlp_ratio=mlp_ratio, norm=norm, act=act)
        self.stage1 = nn.ModuleList(
            Block(dim=fine, side=self.side1, rel_pos_bias=rel_pos_bias, noise_injection=noise_injection, **common)
            for _ in range(depth)
        )
        self.stage2 = nn.ModuleList(
            Block(dim=embed_dim, side=self.side2, rel_pos_bias=rel_pos_bias, noise_injection=noise_injection, **common)
            for _ in range(depth)
        )
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.last_block = Block(dim=embed_dim, noise_injection=noise_injection, **common)
        self.norm = make_norm(norm, embed_dim)
        self.head = nn.Linear(embed_dim, 1)
        self.apply(init_transgan_d)
        self.clusters = (
            ClusterProjection(clusters=clusters, features=channels * resolution**2, dim=embed_dim) if clusters else None
        )
        for p in (self.pos1, self.pos2, self.cls_token):
            nn.init.trunc_normal_(p, std=0.02)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        B = x.shape[0]
        coarse = self.embed2(x).flatten(2).transpose(1, 2)  # (B, side2^2, C/4)
        x = self.embed1(x).flatten(2).transpose(1, 2) + self.pos1  # (B, side1^2, 3C/4)
        for blk in self.stage1:
            x = blk(x)
        x = x.transpose(1, 2).reshape(B, self.fine_dim, self.side1, self.side1)  # (B, 3C/4, s1, s1)
        x = F.avg_pool2d(x, 2).flatten(2).transpose(1, 2)  # (B, side2^2, 3C/4)
        x = torch.cat([x, coarse], dim=2) + self.pos2  # (B, side2^2, C)
        for blk in self.stage2:
            x = blk(x)
        x = torch.cat([self.cls_token.expand(B, -1, -1), x], dim=1)  # (B, 1 + side2^2, C)
        x = self.last_block(x)
        return self.score(self.norm(x[:, 0]), y)


def build_transgan_discriminator(cfg) -> nn.Module:
    d = cfg.model.d
    common = dict(
        resolution=cfg.data.resolution,
        channels=cfg.data.channels,
        patch_size=d.patch_size,
        embed_dim=d.embed_dim,
        depth=d.depth,
        heads=d.heads,
        mlp_ratio=d.mlp_ratio,
        norm=d.norm,
        act=d.act,
        rel_pos_bias=d.rel_pos_bias,
        noise_injection=d.noise_injection,
        clusters=getattr(d, "pixel_clusters", 0),
    )
    if d.arch == "vit":
        return ViTDiscriminator(**common)
    if d.arch == "multiscale":
        return MultiScaleDiscriminator(**common)
    raise ValueError(f"unknown transformer discriminator arch {d.arch!r}; use 'vit' or 'multiscale'")
