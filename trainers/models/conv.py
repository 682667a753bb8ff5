"""SNGAN-style ResNet generator and discriminator: the convolutional baselines of Table 1
(the AutoGAN class: every pairing of transformer and conv G and D can be run).

G: z -> Linear -> s0 x s0 x ch -> [BN-ReLU-up-conv3-BN-ReLU-conv3 + up-conv1 shortcut] x n_up
   -> BN-ReLU-conv3 -> tanh.
D: [conv3-ReLU-conv3-avgpool + avgpool-conv1] (optimized first block) -> residual blocks
   (the first ones downsample) -> ReLU -> sum over space -> Linear, all with spectral norm.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from .latent import LatentCells


def _xavier(module: nn.Module) -> None:
    if isinstance(module, (nn.Conv2d, nn.Linear)):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def _up_blocks(resolution: int) -> tuple[int, int]:
    """(start side, number of x2 upsampling blocks): 32 -> (4, 3), 48 -> (6, 3), 64 -> (8, 3), 16 -> (4, 2)."""
    n_up = 3 if resolution >= 32 else 2
    if resolution % 2**n_up:
        raise ValueError(f"conv baseline: data.resolution={resolution} must be divisible by {2**n_up}")
    return resolution // 2**n_up, n_up


class GenBlock(nn.Module):
    def __init__(self, *, in_ch: int, out_ch: int):  # in_ch/out_ch: channels before/after the block
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.shortcut = nn.Conv2d(in_ch, out_ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.interpolate(F.relu(self.bn1(x)), scale_factor=2, mode="nearest")
        h = self.conv2(F.relu(self.bn2(self.conv1(h))))
        return h + self.shortcut(F.interpolate(x, scale_factor=2, mode="nearest"))


class ConvGenerator(nn.Module):
    def __init__(
        self,
        *,
        latent_dim: int,  # size of z
        resolution: int,  # output side
        channels: int,  # output image channels
        ch: int = 256,  # feature channels of every block
        latent_classes: int = 0,  # K > 0: argmax of z's first K entries picks a learned offset of l1(z)
    ):
        super().__init__()
        self.latent_dim = latent_dim
        self.ch = ch
        self.start, n_up = _up_blocks(resolution)
        self.l1 = nn.Linear(latent_dim, self.start * self.start * ch)
        self.blocks = nn.Sequential(*[GenBlock(in_ch=ch, out_ch=ch) for _ in range(n_up)])
        self.bn = nn.BatchNorm2d(ch)
        self.out = nn.Conv2d(ch, channels, 3, padding=1)
        self.apply(_xavier)
        self.cells = LatentCells(cells=latent_classes, latent_dim=latent_dim, l1=self.l1) if latent_classes else None

    def forward(self, z: torch.Tensor, *, locality_width: int | None = None) -> torch.Tensor:
        # locality_width: accepted for the common G interface; the conv baseline has no attention
        x = self.l1(z) if self.cells is None else self.l1(z) + self.cells(z)
        x = x.reshape(z.shape[0], self.ch, self.start, self.start)  # (B, ch, s0, s0)
        x = self.blocks(x)
        return torch.tanh(self.out(F.relu(self.bn(x))))


class DisBlock(nn.Module):
    def __init__(self, *, in_ch: int, out_ch: int, down: bool, first: bool = False):
        # in_ch/out_ch: channels; down: AvgPool 2 at the end; first: the "optimized" block (no leading ReLU)
        super().__init__()
        self.conv1 = spectral_norm(nn.Conv2d(in_ch, out_ch, 3, padding=1))
        self.conv2 = spectral_norm(nn.Conv2d(out_ch, out_ch, 3, padding=1))
        self.learn_sc = down or in_ch != out_ch
        self.shortcut = spectral_norm(nn.Conv2d(in_ch, out_ch, 1)) if self.learn_sc else None
        self.down = down
        self.first = first

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x if self.first else F.relu(x)
        h = self.conv2(F.relu(self.conv1(h)))
        if self.down:
            h = F.avg_pool2d(h, 2)
        sc = x
        if self.first:
            sc = self.shortcut(F.avg_pool2d(sc, 2))
        elif self.learn_sc:
            sc = self.shortcut(sc)
            if self.down:
                sc = F.avg_pool2d(sc, 2)
        return h + sc


class ConvDiscriminator(nn.Module):
    def __init__(
        self,
        *,
        resolution: int,  # input side
        channels: int,  # input image channels
        ch: int = 128,  # feature channels of every block
    ):
        super().__init__()
        n_down = 2 if resolution <= 32 else 3
        if resolution % 2**n_down:
            raise ValueError(f"conv baseline D: data.resolution={resolution} must be divisible by {2**n_down}")
        blocks = [DisBlock(in_ch=channels, out_ch=ch, down=True, first=True)]
        blocks += [DisBlock(in_ch=ch, out_ch=ch, down=True) for _ in range(n_down - 1)]
        blocks += [DisBlock(in_ch=ch, out_ch=ch, down=False) for _ in range(2)]
        self.blocks = nn.Sequential(*blocks)
        self.head = spectral_norm(nn.Linear(ch, 1))
        # spectral_norm re-parametrises the weights; initialise the originals
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.parametrizations.weight.original)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.blocks(x)).sum(dim=(2, 3))  # (B, ch): sum over space
        return self.head(h).squeeze(1)


def build_conv_generator(cfg) -> ConvGenerator:
    return ConvGenerator(
        latent_dim=cfg.model.g.latent_dim,
        resolution=cfg.data.resolution,
        channels=cfg.data.channels,
        ch=cfg.model.g.conv_ch,
        latent_classes=getattr(cfg.model.g, "latent_classes", 0),
    )


def build_conv_discriminator(cfg) -> ConvDiscriminator:
    return ConvDiscriminator(resolution=cfg.data.resolution, channels=cfg.data.channels, ch=cfg.model.d.conv_ch)
