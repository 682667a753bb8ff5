"""DiffAugment: gradients flow, shapes and value ranges hold, a fixed seed reproduces the output."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from transgan_lab.trainers import augment as Aug
from transgan_lab.trainers.augment import DiffAugment


def _cfg(policy, **kw):
    base = dict(translation_ratio=0.2, cutout_ratio=0.5, gate_prob=1.0, erase_min=0.2, erase_max=0.7)
    base.update(kw)
    return SimpleNamespace(policy=policy, **base)


def _images(n=8, c=3, s=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, c, s, s, generator=g) * 2 - 1


@pytest.mark.parametrize(
    "policy", [["translation"], ["cutout"], ["color"], ["erase"], ["stl_erase"], ["translation", "cutout", "color"]]
)
def test_gradients_flow_and_shapes_hold(policy):
    x = _images(s=48 if "stl_erase" in policy else 16).requires_grad_(True)  # stl_erase sides are 20..44 px
    torch.manual_seed(0)
    y = DiffAugment(_cfg(policy))(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    (y * torch.randn_like(y)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_fixed_seed_gives_identical_output():
    aug = DiffAugment(_cfg(["translation", "cutout", "color", "erase"], gate_prob=0.5))
    x = _images()
    torch.manual_seed(123)
    a = aug(x)
    torch.manual_seed(123)
    b = aug(x)
    torch.manual_seed(124)
    c = aug(x)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_translation_shifts_by_integers_within_ratio():
    x = _images(n=64, c=1, s=10)
    torch.manual_seed(0)
    y = Aug.translation(x, ratio=0.2)  # shifts up to round(2.0) = 2 px
    for i in range(x.shape[0]):
        found = False
        for dy in range(-2, 3):
            for dx in range(-2, 3):
                ref = torch.zeros_like(x[i])
                src = x[i, :, max(0, -dy) : 10 - max(0, dy), max(0, -dx) : 10 - max(0, dx)]
                ref[:, max(0, dy) : 10 - max(0, -dy), max(0, dx) : 10 - max(0, -dx)] = src
                found |= torch.equal(y[i], ref)
        assert found, f"sample {i} is not an integer shift within 2 px"
    # values stay in the input range (zero padding is inside [-1, 1])
    assert y.min() >= -1 and y.max() <= 1


def test_cutout_zeroes_a_square_and_the_gate_switches_the_batch():
    x = torch.ones(16, 3, 16, 16)
    torch.manual_seed(0)
    y = Aug.cutout(x, ratio=0.5, gate_prob=1.0)
    zeros = (y == 0).all(dim=1)  # (N, H, W)
    for i in range(16):  # a square of side 8 clipped at the borders: rows x cols
        rows, cols = zeros[i].any(1).sum().item(), zeros[i].any(0).sum().item()
        assert zeros[i].sum().item() == rows * cols and 1 <= rows <= 8 and 1 <= cols <= 8
    assert set(y.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(Aug.cutout(x, ratio=0.5, gate_prob=0.0), x)
    torch.manual_seed(1)
    gated = [bool((Aug.cutout(x, ratio=0.5, gate_prob=0.3) == 0).any()) for _ in range(400)]
    assert 0.2 < sum(gated) / 400 < 0.4  # one gate draw per call, applied to the whole batch


def test_erase_uses_one_size_per_call():
    x = torch.ones(12, 1, 20, 20)
    torch.manual_seed(5)
    y = Aug.erase(x, lo=0.2, hi=0.7, gate_prob=1.0)
    sizes = {(int((y[i, 0] == 0).any(1).sum()), int((y[i, 0] == 0).any(0).sum())) for i in range(12)}
    assert len(sizes) == 1  # shared rectangle size, positions differ
    h, w = sizes.pop()
    assert 4 <= h <= 14 and 4 <= w <= 14


def test_stl_erase_sides_in_range():
    x = torch.ones(6, 3, 48, 48)
    for seed in range(10):
        torch.manual_seed(seed)
        y = Aug.stl_erase(x, gate_prob=1.0)
        zero = y[0, 0] == 0
        h, w = int(zero.any(1).sum()), int(zero.any(0).sum())
        assert 20 <= h <= 44 and 20 <= w <= 44


def test_color_is_per_sample_and_grey_images_skip_saturation():
    x = _images(n=4, c=1)
    torch.manual_seed(0)
    y = Aug.color(x)
    assert y.shape == x.shape
    # for one channel: y = (x + b - m) * c + m with m the mean of x + b, i.e. an affine map per sample
    for i in range(4):
        a = torch.stack([x[i].flatten(), torch.ones(x[i].numel())], 1)
        sol = torch.linalg.lstsq(a, y[i].flatten().unsqueeze(1)).solution
        torch.testing.assert_close(a @ sol, y[i].flatten().unsqueeze(1), atol=1e-5, rtol=1e-5)
        assert 0.5 <= sol[0].item() <= 1.5  # the contrast factor


def test_unknown_op_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown op"):
        DiffAugment(_cfg(["translation", "blur"]))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        DiffAugment(_cfg(["color"]))(torch.zeros(3, 8, 8))
