"""Pixel clusters: a discriminator conditioned on a mode of the data, without labels.

K-means (k-means++ seeding, Lloyd iterations, 20 restarts) runs once, at the start of training,
on up to ``FIT_IMAGES`` training images in pixel space. A real image's cluster is its nearest
centroid; a generated image's cluster is its latent cell (``model.g.latent_classes`` = K). D adds a
projection term <embed(y), h> to its score (h: D's normalised [cls] feature; Miyato & Koyama 2018),
so it judges the samples of cell c against the real images of cluster c and G has to give each cell
its own mode of the data. The embedding starts at zero: at initialisation D is unconditional.
In training, each D update draws its fakes in the clusters of its real batch (trainers.step:
``match_cells_to_clusters``), so both sides of D's loss hold every cluster equally often; samplers
outside training draw plain z, whose cells are uniform.

The centroids are a buffer of D, so checkpoints carry them and a resumed run assigns as before.
"""

from __future__ import annotations

import torch
from torch import nn

FIT_IMAGES = 10_000  # images the centroids are fitted on (a seeded random subset of larger datasets)


def kmeans(x: torch.Tensor, k: int, *, seed: int, iters: int = 100, restarts: int = 20) -> torch.Tensor:
    """(N, F) float -> (k, F) centroids of the restart with the lowest inertia (deterministic in seed)."""
    n = x.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"k-means with {k} clusters needs at least {k} images, got {n}")
    gen = torch.Generator().manual_seed(seed)
    x = x.float()
    sq = x.pow(2).sum(1)
    best, best_inertia = None, float("inf")
    for _ in range(restarts):
        # k-means++ seeding: each next centroid drawn with probability ~ squared distance to the nearest
        c = x[torch.randint(n, (1,), generator=gen)]
        for _ in range(1, k):
            d2 = torch.cdist(x, c).pow(2).min(dim=1).values
            c = torch.cat([c, x[torch.multinomial(d2 / d2.sum(), 1, generator=gen)]])
        for _ in range(iters):
            # |x - c|^2 = |x|^2 - 2 x.c + |c|^2
            assign = (sq[:, None] - 2 * x @ c.T + c.pow(2).sum(1)[None]).argmin(dim=1)
            new = torch.zeros_like(c).index_add_(0, assign, x)
            count = torch.bincount(assign, minlength=k).to(x.dtype)
            # an empty cluster keeps its centroid
            new = torch.where((count == 0)[:, None], c, new / count.clamp(min=1)[:, None])
            if torch.equal(new, c):
                break
            c = new
        inertia = (sq[:, None] - 2 * x @ c.T + c.pow(2).sum(1)[None]).min(dim=1).values.sum().item()
        if inertia < best_inertia:
            best, best_inertia = c, inertia
    return best


class ClusterProjection(nn.Module):
    """Nearest-centroid cluster of a real image, and D's projection term for a cluster."""

    def __init__(self, *, clusters: int, features: int, dim: int):
        super().__init__()
        self.k = clusters
        self.register_buffer("centroids", torch.zeros(clusters, features))
        self.embed = nn.Embedding(clusters, dim)
        nn.init.zeros_(self.embed.weight)

    @torch.no_grad()
    def fit(self, images: torch.Tensor, *, seed: int) -> None:
        """Fit the centroids on (N, C, H, W) images in [-1, 1] (the un-augmented training data)."""
        c = kmeans(images.flatten(1).float().cpu(), self.k, seed=seed)
        self.centroids.copy_(c.to(self.centroids.device))

    @torch.no_grad()
    def assign(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B,) int64: the nearest centroid (squared Euclidean distance in pixel space)."""
        x = images.flatten(1).to(self.centroids.dtype)
        c = self.centroids
        return (c.pow(2).sum(1)[None] - 2 * x @ c.T).argmin(dim=1)

    def forward(self, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """(B, dim) features, (B,) clusters -> (B,) projection term."""
        return (self.embed(y).to(h.dtype) * h).sum(dim=1)


def fit_clusters(D: nn.Module, dataset, *, seed: int) -> None:
    """Fit D's centroids (if it has any) on up to FIT_IMAGES images of ``dataset`` drawn with ``seed``."""
    proj = getattr(D, "clusters", None)
    if proj is None:
        return
    n = len(dataset)
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randperm(n, generator=gen)[:FIT_IMAGES] if n > FIT_IMAGES else torch.arange(n)
    proj.fit(dataset.get_batch(idx.sort().values), seed=seed)
