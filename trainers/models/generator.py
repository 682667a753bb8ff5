"""TransGAN generator (v1 and v2 families).

latent z -> Linear -> bottom x bottom tokens of width C (+ pos-embed) -> stage 0 blocks
-> [tokens -> map -> PixelShuffle(2) -> tokens: resolution x2, width /4, + pos-embed -> blocks] ...
-> map -> 1x1 conv to image channels. No output activation by default (as the paper's code); ``out_act=
"tanh"`` bounds the output to (-1, 1), the range of the data.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .attention import locality_mask
from .blocks import Block
from .latent import LatentCells


def pixel_upsample(x: torch.Tensor, *, side: int) -> torch.Tensor:
    """(B, side^2, C) tokens -> PixelShuffle(2) -> (B, (2 side)^2, C/4) tokens."""
    B, N, C = x.shape
    x = x.transpose(1, 2).reshape(B, C, side, side)  # (B, C, H, W)
    x = F.pixel_shuffle(x, 2)  # (B, C/4, 2H, 2W)
    return x.flatten(2).transpose(1, 2)  # (B, 4N, C/4)


class TransGANGenerator(nn.Module):
    def __init__(
        self,
        *,
        latent_dim: int,  # size of z
        bottom: int,  # side of the first token grid
        embed_dim: int,  # width of stage 0 (each PixelShuffle divides it by 4)
        depths: list[int],  # blocks per stage
        channels: int,  # image channels of the output
        heads: int = 4,  # attention heads in every block
        mlp_ratio: float = 4.0,  # MLP hidden / width
        norm: str = "ln",  # "ln" | "pn"
        act: str = "gelu",  # "gelu" | "leakyrelu"
        rel_pos_bias: bool = False,  # learned relative bias over the attended grid (v2)
        window_size: int = 16,  # grid-attention window side
        window_min_res: int = 64,  # stages at this resolution or above attend in windows
        noise_injection: bool = False,  # per-token noise before qkv
        self_modulation: bool = False,  # cross-attention to latent tokens at the start of every block
        modulation_tokens: int = 16,  # number of latent tokens for self-modulation
        locality_kind: str | None = None,  # "band1d" | "box2d" for the locality mask; None = never masked
        locality_blocks: int = 1,  # masked blocks at the end of the last stage
        mtct: bool = False,  # build the super-resolution input path (MT-CT)
        out_act: str = "none",  # "none" (official) | "tanh": activation on the output pixels
        latent_classes: int = 0,  # K > 0: argmax of z's first K entries picks a learned offset of l1(z)
    ):
        super().__init__()
        n = len(depths)
        if n < 1 or any(d < 1 for d in depths):
            raise ValueError(f"model.g.depths={depths}: give one positive block count per stage")
        if embed_dim % 4 ** (n - 1):
            raise ValueError(f"model.g.embed_dim={embed_dim} must be divisible by 4^(stages-1)={4 ** (n - 1)}")
        self.latent_dim = latent_dim
        self.bottom = bottom
        self.embed_dim = embed_dim
        self.channels = channels
        self.resolution = bottom * 2 ** (n - 1)
        self.sides = [bottom * 2**i for i in range(n)]
        self.widths = [embed_dim // 4**i for i in range(n)]
        self.locality_kind = locality_kind
        if out_act not in ("none", "tanh"):
            raise ValueError(f"model.g.out_act={out_act!r}; use 'none' or 'tanh'")
        self.out_act = out_act

        self.l1 = nn.Linear(latent_dim, bottom * bottom * embed_dim)
        # model.g.latent_classes: argmax(z[:K]) picks a learned offset of l1(z) (see latent.py)
        self.cells = LatentCells(cells=latent_classes, latent_dim=latent_dim, l1=self.l1) if latent_classes else None
        self.sr_embed = nn.Linear(channels, embed_dim) if mtct else None
        if self_modulation:
            self.mod_l1 = nn.Linear(latent_dim, modulation_tokens * embed_dim)
            self.mod_pos = nn.Parameter(torch.zeros(1, modulation_tokens, embed_dim))
            nn.init.trunc_normal_(self.mod_pos, std=0.02)
        else:
            self.mod_l1 = None
            self.mod_pos = None
        self.modulation_tokens = modulation_tokens

        self.pos_embed = nn.ParameterList()
        self.stages = nn.ModuleList()
        self.windows: list[int | None] = []
        self.masked: list[list[bool]] = []
        for i, (side, width, depth) in enumerate(zip(self.sides, self.widths, depths)):
            pe = nn.Parameter(torch.zeros(1, side * side, width))
            nn.init.trunc_normal_(pe, std=0.02)
            self.pos_embed.append(pe)
            window = None
            if side >= window_min_res and window_size < side:
                if side % window_size:
                    raise ValueError(
                        f"model.g.window_size={window_size} does not divide the {side}x{side} stage; pick a divisor"
                    )
                window = window_size
            self.windows.append(window)
            last = i == n - 1
            self.masked.append([bool(locality_kind) and last and j >= depth - locality_blocks for j in range(depth)])
            self.stages.append(
                nn.ModuleList(
                    Block(
                        dim=width,
                        heads=heads,
                        mlp_ratio=mlp_ratio,
                        norm=norm,
                        act=act,
                        side=side,
                        window=window,
                        rel_pos_bias=rel_pos_bias,
                        noise_injection=noise_injection,
                        context_dim=embed_dim if self_modulation else None,
                    )
                    for _ in range(depth)
                )
            )
        self.head = nn.Conv2d(self.widths[-1], channels, kernel_size=1)
        nn.init.xavier_uniform_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        self._mask_cache: dict = {}

    # The mask side is the grid the masked block attends over (the window with grid attention).
    # Kept out of torch.compile: a graph break here costs nothing, while tracing the cache lookup
    # made every new cache entry a guard failure and hit the recompile limit within a few steps.
    @torch.compiler.disable
    def _locality_mask(self, width: int, device: torch.device) -> torch.Tensor:
        key = (int(width), str(device))
        mask = self._mask_cache.get(key)
        if mask is None:
            side = self.windows[-1] or self.sides[-1]
            mask = locality_mask(side=side, width=int(width), kind=self.locality_kind, device=device)
            self._mask_cache[key] = mask
        return mask

    def _latent_tokens(self, z: torch.Tensor) -> torch.Tensor | None:
        if self.mod_l1 is None:
            return None
        return self.mod_l1(z).reshape(z.shape[0], self.modulation_tokens, self.embed_dim) + self.mod_pos

    def _sr_tokens(self, lr_images: torch.Tensor) -> torch.Tensor:
        if self.sr_embed is None:
            raise ValueError("this generator has no super-resolution path: set model.mtct.enabled=true")
        if lr_images.dim() != 4 or tuple(lr_images.shape[1:]) != (self.channels, self.bottom, self.bottom):
            raise ValueError(
                f"lr_images must be (N, {self.channels}, {self.bottom}, {self.bottom}), got {tuple(lr_images.shape)}"
            )
        return self.sr_embed(lr_images.flatten(2).transpose(1, 2))  # (B, bottom^2, C)

    def forward(
        self,
        z: torch.Tensor | None,  # (B, latent_dim); None when only lr_images is given
        *,
        locality_width: int | None = None,  # half-width of the locality mask; None = no mask
        lr_images: torch.Tensor | None = None,  # (B', channels, bottom, bottom): MT-CT input
    ):
        """z -> images; lr_images -> super-resolved images; both -> (images, sr_images) from ONE batched
        pass (every parameter used once per forward, which DistributedDataParallel needs)."""
        parts, latents = [], []
        if z is not None:
            if z.dim() != 2 or z.shape[1] != self.latent_dim:
                raise ValueError(f"z must be (N, {self.latent_dim}), got {tuple(z.shape)}")
            x0 = self.l1(z)  # (B, bottom^2 * C)
            if self.cells is not None:
                x0 = x0 + self.cells(z)
            parts.append(x0.reshape(z.shape[0], self.bottom * self.bottom, self.embed_dim))  # (B, bottom^2, C)
            latents.append(z)
        if lr_images is not None:
            parts.append(self._sr_tokens(lr_images))
            # self-modulation on the SR path attends to the tokens of z = 0
            latents.append(lr_images.new_zeros(lr_images.shape[0], self.latent_dim))
        if not parts:
            raise ValueError("give z (N, latent_dim) and/or lr_images")
        x = parts[0] if len(parts) == 1 else torch.cat(parts, dim=0)
        B = x.shape[0]
        context = None
        if self.mod_l1 is not None:
            context = self._latent_tokens(latents[0] if len(latents) == 1 else torch.cat(latents, dim=0))
        mask = None
        if locality_width is not None and self.locality_kind:
            mask = self._locality_mask(locality_width, x.device)
        for i, blocks in enumerate(self.stages):
            if i > 0:
                x = pixel_upsample(x, side=self.sides[i - 1])
            x = x + self.pos_embed[i]
            for j, blk in enumerate(blocks):
                x = blk(x, mask if self.masked[i][j] else None, context)
        side = self.sides[-1]
        x = x.transpose(1, 2).reshape(B, self.widths[-1], side, side)  # (B, C, H, W)
        out = self.head(x)
        if self.out_act == "tanh":
            out = torch.tanh(out)
        if len(parts) == 2:
            return out[: z.shape[0]], out[z.shape[0] :]
        return out

    def super_resolve(self, lr_images: torch.Tensor, *, locality_width: int | None = None) -> torch.Tensor:
        """MT-CT: (B, channels, bottom, bottom) low-resolution real images -> (B, channels, H, W)."""
        return self.forward(None, locality_width=locality_width, lr_images=lr_images)


def build_transgan_generator(cfg) -> TransGANGenerator:
    g = cfg.model.g
    res = cfg.data.resolution
    n = len(g.depths)
    if g.bottom * 2 ** (n - 1) != res:
        raise ValueError(
            f"model.g.bottom={g.bottom} with {n} stages makes {g.bottom * 2 ** (n - 1)}px images but "
            f"data.resolution={res}; set model.g.bottom={res / 2 ** (n - 1):g} or change model.g.depths"
        )
    loc = g.locality
    mtct = getattr(cfg.model, "mtct", None)
    return TransGANGenerator(
        latent_dim=g.latent_dim,
        bottom=g.bottom,
        embed_dim=g.embed_dim,
        depths=list(g.depths),
        channels=cfg.data.channels,
        heads=g.heads,
        mlp_ratio=g.mlp_ratio,
        norm=g.norm,
        act=g.act,
        rel_pos_bias=g.rel_pos_bias,
        window_size=g.window_size,
        window_min_res=g.window_min_res,
        noise_injection=g.noise_injection,
        self_modulation=g.self_modulation,
        modulation_tokens=g.modulation_tokens,
        locality_kind=loc.kind if loc.enabled else None,
        locality_blocks=loc.last_blocks,
        mtct=bool(mtct is not None and mtct.enabled),
        out_act=getattr(g, "out_act", "none"),
        latent_classes=getattr(g, "latent_classes", 0),
    )
