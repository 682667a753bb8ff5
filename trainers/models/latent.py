"""Latent cells: a discrete part of G's latent drawn from the Gaussian z itself.

The cell of z is argmax(z[:K]) -- uniform over K cells for Gaussian z, so every sampler (training,
metrics, grids, interpolations) keeps drawing plain z. Each cell adds its own learned offset to
G's first projection l1(z), which lets G send separate cells to separate modes of the data (for
digits: classes) instead of sweeping one connected latent through the ambiguous shapes between them.
"""

from __future__ import annotations

import torch
from torch import nn


class LatentCells(nn.Module):
    def __init__(self, *, cells: int, latent_dim: int, l1: nn.Linear):
        super().__init__()
        if not 1 <= cells <= latent_dim:
            raise ValueError(f"model.g.latent_classes={cells} must lie in 1..latent_dim={latent_dim}")
        self.cells = cells
        self.offset = nn.Embedding(cells, l1.out_features)
        # Drawn at the spread of l1(z) at init (for z ~ N(0, I) each output's std is its weight row's norm).
        # Tensor ops only (no host read), so the generator can also be built on the meta device.
        with torch.no_grad():
            self.offset.weight.normal_().mul_(l1.weight.pow(2).sum(dim=1).mean().sqrt())

    def cell(self, z: torch.Tensor) -> torch.Tensor:
        """(B, latent_dim) -> (B,) int64 cell index."""
        return z[:, : self.cells].argmax(dim=1)

    def with_cell(self, z: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        """(B, latent_dim) z, (B,) cells -> z whose first K entries are permuted so that their argmax
        is ``cell``: the largest entry and the entry at ``cell`` swap places. For Gaussian z this is a
        draw of z given its cell (the K entries are exchangeable); the other entries are untouched."""
        head = z[:, : self.cells].clone()
        rows = torch.arange(z.shape[0], device=z.device)
        top = head.argmax(dim=1)
        top_v, cell_v = head[rows, top], head[rows, cell]
        head[rows, cell] = top_v
        head[rows, top] = torch.where(top == cell, top_v, cell_v)
        return torch.cat([head, z[:, self.cells :]], dim=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(B, latent_dim) -> (B, l1.out_features): the offset of each sample's cell."""
        return self.offset(self.cell(z))
