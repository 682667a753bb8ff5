"""Model builders: output shapes for every preset, parameter counts against the facts, locality."""

from __future__ import annotations

import pytest
import torch

from transgan_lab.platform.config import load_config
from transgan_lab.trainers.models import build_discriminator, build_generator, locality_width


def _params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_digits_tiny_shapes_and_latent_dim():
    cfg = load_config("digits-tiny", [])
    torch.manual_seed(0)
    G, D = build_generator(cfg), build_discriminator(cfg)
    assert G.latent_dim == 64
    x = G(torch.randn(3, G.latent_dim))
    assert x.shape == (3, 1, 16, 16)
    s = D(x)
    assert s.shape == (3,) and s.dtype == torch.float32
    s.sum().backward()
    assert G.l1.weight.grad.abs().sum() > 0 and G.head.weight.grad.abs().sum() > 0


def test_locality_schedule_cifar_and_celeba():
    cifar = load_config("cifar10-s", []).model.g.locality
    expected = {0: 4, 21: 4, 22: 6, 31: 6, 32: 8, 41: 8, 42: 10, 59: 10, 60: None, 200: None}
    assert {e: locality_width(cifar, e) for e in expected} == expected
    celeba = load_config("celeba64-xl", []).model.g.locality
    expected = {0: 8, 4: 8, 5: 12, 10: 16, 15: 20, 19: 20, 20: None, 300: None}
    assert {e: locality_width(celeba, e) for e in expected} == expected
    off = load_config("digits-tiny", []).model.g.locality
    assert locality_width(off, 0) is None


def test_locality_mask_changes_only_the_last_block_and_is_cached():
    cfg = load_config("digits-tiny", ["model.g.locality.enabled=true", "model.g.locality.schedule=[[0, 1]]",
                                      "model.g.locality.off_epoch=5"])
    torch.manual_seed(0)
    G = build_generator(cfg).eval()
    z = torch.randn(2, G.latent_dim)
    full, local = G(z), G(z, locality_width=1)
    assert not torch.allclose(full, local)
    assert torch.allclose(G(z, locality_width=10_000), full, atol=1e-5)  # a band wider than the grid = no mask
    assert G.masked == [[False, False], [False], [True]]
    assert len(G._mask_cache) == 2
    G(z, locality_width=1)
    assert len(G._mask_cache) == 2
