"""FLOP counter: matches hand counts (attention QK^T and AV included); parameters and FLOPs per preset."""

from __future__ import annotations

import torch

from transgan_lab.platform.config import load_config
from transgan_lab.trainers.flops import count_params, format_summary, forward_flops, model_summary
from transgan_lab.trainers.models.blocks import Block


def block_flops_by_hand(*, n_tokens: int, dim: int, attended: int, mlp_ratio: float = 4.0) -> int:
    """One pre-norm block per image, 1 multiply-add = 2 FLOPs: qkv, QK^T, AV, proj, MLP."""
    qkv = 2 * n_tokens * dim * 3 * dim
    qk = 2 * n_tokens * attended * dim  # every query against `attended` keys, summed over heads
    av = 2 * n_tokens * attended * dim
    proj = 2 * n_tokens * dim * dim
    mlp = 2 * 2 * n_tokens * dim * int(dim * mlp_ratio)
    return qkv + qk + av + proj + mlp


def test_one_block_matches_hand_count_including_attention():
    with torch.device("meta"):
        blk = Block(dim=64, heads=4, mlp_ratio=4, norm="ln", act="gelu", side=8, rel_pos_bias=True)
        x = torch.zeros(1, 64, 64)
    counted = forward_flops(blk, x)
    assert counted == block_flops_by_hand(n_tokens=64, dim=64, attended=64)
    # the attention products alone are 4 N^2 d = 1,048,576 FLOPs here; they are in the count
    assert counted - (24 * 64 * 64**2) == 4 * 64**2 * 64


def test_windowed_block_counts_window_attention():
    with torch.device("meta"):
        blk = Block(dim=32, heads=4, mlp_ratio=4, norm="ln", act="gelu", side=16, window=4)
        x = torch.zeros(1, 256, 32)
    assert forward_flops(blk, x) == block_flops_by_hand(n_tokens=256, dim=32, attended=16)


def test_digits_generator_total_matches_hand_count():
    cfg = load_config("digits-tiny", [])
    s = model_summary(cfg)
    g = cfg.model.g
    hand = 2 * g.latent_dim * g.bottom * g.bottom * g.embed_dim  # latent projection
    sides = [g.bottom * 2**i for i in range(len(g.depths))]  # each stage doubles the side ...
    widths = [g.embed_dim // 4**i for i in range(len(g.depths))]  # ... and quarters the width (PixelShuffle)
    for side, dim, depth in zip(sides, widths, g.depths):
        n = side * side
        hand += depth * block_flops_by_hand(n_tokens=n, dim=dim, attended=n)
    res = cfg.data.resolution
    hand += 2 * res * res * widths[-1] * cfg.data.channels  # 1x1 conv head: last width -> image channels
    assert s["g_flops"] == hand
    assert set(s) == {"g_params", "d_params", "g_flops", "d_flops"}
    assert all(isinstance(v, int) and v > 0 for v in s.values())
    from transgan_lab.trainers.models import build_discriminator, build_generator

    assert s["g_params"] == count_params(build_generator(cfg))
    assert s["d_params"] == count_params(build_discriminator(cfg))
    text = format_summary(s)
    assert "G:" in text and "D:" in text and "GFLOPs/image" in text


def test_v2_summary_params_and_flops_scale():
    s = model_summary(load_config("cifar10-v2", []))
    assert abs(s["g_params"] / 83.3e6 - 1) < 0.01 and abs(s["d_params"] / 10.2e6 - 1) < 0.01
    hand = 2 * 256 * 64 * 1024  # latent projection
    for side, dim, depth in ((8, 1024, 5), (16, 256, 4), (32, 64, 2)):
        hand += depth * block_flops_by_hand(n_tokens=side * side, dim=dim, attended=side * side)
    hand += 2 * 32 * 32 * 64 * 3  # 1x1 conv head
    assert s["g_flops"] == hand
