"""Model builders: output shapes for every preset, parameter counts against the facts, locality."""

from __future__ import annotations

import pytest
import torch

from transgan_lab.platform.config import load_config
from transgan_lab.trainers.models import build_discriminator, build_generator, locality_width


def _params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def _cells(D, G, z) -> tuple:
    """D's extra argument: the samples' latent cells when D is conditioned on pixel clusters."""
    return () if getattr(D, "clusters", None) is None else (G.cells.cell(z),)


def test_digits_tiny_shapes_and_latent_dim():
    cfg = load_config("digits-tiny", [])
    torch.manual_seed(0)
    G, D = build_generator(cfg), build_discriminator(cfg)
    assert G.latent_dim == 64
    z = torch.randn(3, G.latent_dim)
    x = G(z)
    assert x.shape == (3, 1, 16, 16)
    s = D(x, G.cells.cell(z))  # the preset's D is conditioned on the cells (model.d.pixel_clusters)
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
    cfg = load_config(
        "digits-tiny",
        ["model.g.locality.enabled=true", "model.g.locality.schedule=[[0, 1]]", "model.g.locality.off_epoch=5"],
    )
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


PRESETS = {  # preset: (image shape, G params (M), D params (M)) from our own count of the layer shapes
    "digits-tiny": ((1, 16, 16), None, None),
    "cifar10-s": ((3, 32, 32), None, None),
    "cifar10-m": ((3, 32, 32), None, None),
    "cifar10-l": ((3, 32, 32), None, None),
    "cifar10-xl": ((3, 32, 32), 133.6, None),  # facts: v1 XL CIFAR G ~133.6 M
    "cifar10-v2": ((3, 32, 32), 83.3, 10.2),  # facts: v2 CIFAR G ~83.3 M, D ~10.2 M
    "stl10-xl": ((3, 48, 48), 150.0, None),  # facts: v1 STL G ~150 M
    "celeba64-xl": ((3, 64, 64), None, None),
}


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_output_shape_and_param_counts(preset):
    cfg = load_config(preset, [])
    shape, g_m, d_m = PRESETS[preset]
    with torch.device("meta"):  # shape propagation and counting without memory or compute
        G, D = build_generator(cfg), build_discriminator(cfg)
        z = torch.zeros(2, G.latent_dim)
        x = G(z)
        s = D(x, *_cells(D, G, z))
    assert tuple(x.shape) == (2, *shape)
    assert tuple(s.shape) == (2,)
    if g_m:
        assert abs(_params(G) / 1e6 - g_m) / g_m < 0.01, _params(G)
    if d_m:
        assert abs(_params(D) / 1e6 - d_m) / d_m < 0.01, _params(D)


def test_v1_vit_d_matches_the_facts():
    cfg = load_config("cifar10-s", [])
    with torch.device("meta"):
        D = build_discriminator(cfg)
    assert abs(_params(D) / 1e6 - 12.5) / 12.5 < 0.01  # facts: ViT_8_8 ~12.5 M
    assert D.side == 8 and D.pos_embed.shape == (1, 65, 384)  # 8x8 patches + [cls]


def test_stage_layout_of_the_paper_generators():
    with torch.device("meta"):
        v2 = build_generator(load_config("cifar10-v2", []))
        celeba = build_generator(load_config("celeba64-xl", []))
    assert v2.sides == [8, 16, 32] and v2.widths == [1024, 256, 64]
    assert [len(s) for s in v2.stages] == [5, 4, 2]
    # global attention + relative bias over the whole stage grid (w = 8, 16, 32)
    assert [s[0].attn.rel_pos.window for s in v2.stages] == [8, 16, 32]
    assert v2.l1.weight.numel() == 256 * 64 * 1024  # the 16.8 M latent projection
    assert celeba.sides == [8, 16, 32, 64] and celeba.widths == [1024, 256, 64, 16]
    assert celeba.windows == [None, None, None, 16]  # grid attention at 64x64
    assert celeba.masked[-1] == [False, True]


def test_cifar_and_v2_real_forward_backward():
    # the paper topologies at reduced width (real compute on a shared 2-core CPU)
    torch.manual_seed(0)
    cfg = load_config("cifar10-s", ["model.g.embed_dim=128", "model.g.latent_dim=32"])
    G = build_generator(cfg)
    x = G(torch.randn(2, G.latent_dim), locality_width=4)
    assert x.shape == (2, 3, 32, 32) and torch.isfinite(x).all()
    D = build_discriminator(load_config("cifar10-v2", ["model.d.embed_dim=64"]))
    s = D(x)
    assert s.shape == (2,) and torch.isfinite(s).all()
    s.sum().backward()
    assert D.embed2.weight.grad.abs().sum() > 0 and D.stage1[0].attn.rel_pos.table.grad.abs().sum() > 0


def test_window_attention_equals_block_diagonal_masked_global_attention():
    from transgan_lab.trainers.models.blocks import Block

    torch.manual_seed(0)
    side, win = 8, 4
    windowed = Block(dim=16, heads=4, mlp_ratio=4, norm="ln", act="gelu", side=side, window=win)
    full = Block(dim=16, heads=4, mlp_ratio=4, norm="ln", act="gelu", side=side)
    full.load_state_dict(windowed.state_dict())
    idx = torch.arange(side * side)
    win_id = (idx // side) // win * (side // win) + (idx % side) // win
    mask = torch.zeros(side * side, side * side).masked_fill(win_id[:, None] != win_id[None, :], float("-inf"))
    x = torch.randn(2, side * side, 16)
    torch.testing.assert_close(windowed(x), full(x, mask), rtol=1e-5, atol=1e-5)


def test_small_windowed_generator_with_all_v2_options_runs_for_real():
    # digits-sized, with grid attention moved down to the 16x16 stage (8x8 windows) to stay cheap
    cfg = load_config(
        "digits-tiny",
        [
            "model.g.window_min_res=16",
            "model.g.window_size=8",
            "model.g.rel_pos_bias=true",
            "model.g.noise_injection=true",
            "model.g.self_modulation=true",
            "model.g.modulation_tokens=4",
            "model.g.norm=pn",
            "model.g.locality.enabled=true",
            "model.g.locality.kind=box2d",
            "model.g.locality.schedule=[[0, 2]]",
            "model.g.locality.off_epoch=5",
        ],
    )
    torch.manual_seed(0)
    G = build_generator(cfg)
    assert G.windows == [None, None, 8]
    assert G.stages[2][0].attn.rel_pos.window == 8  # the bias covers the window
    assert G.stages[1][0].attn.rel_pos.window == 8  # global at 8x8: the bias covers the grid
    z = torch.randn(2, G.latent_dim)
    x = G(z, locality_width=locality_width(cfg.model.g.locality, 0))
    assert x.shape == (2, 1, 16, 16) and torch.isfinite(x).all()
    assert G._locality_mask(2, x.device).shape == (64, 64)  # window-local mask
    # noise strength starts at 0, so G is deterministic until it is learned
    torch.testing.assert_close(G(z, locality_width=2), x)
    x.square().mean().backward()
    assert G.mod_l1.weight.grad.abs().sum() > 0
    assert G.stages[0][0].cross.kv.weight.grad.abs().sum() > 0
    assert G.stages[2][0].attn.noise_strength.grad is not None
    with torch.no_grad():
        for m in G.modules():
            if getattr(m, "noise_strength", None) is not None:
                m.noise_strength.fill_(0.5)
        assert not torch.allclose(G(z), G(z))


def test_super_resolve_shape_and_errors():
    cfg = load_config("digits-tiny", ["model.mtct.enabled=true"])
    G = build_generator(cfg)
    out = G.super_resolve(torch.zeros(3, 1, 4, 4))
    assert out.shape == (3, 1, 16, 16)
    with pytest.raises(ValueError, match=r"lr_images must be \(N, 1, 4, 4\)"):
        G.super_resolve(torch.zeros(3, 1, 8, 8))
    with pytest.raises(ValueError, match="z must be"):
        G(torch.zeros(3, 7))


@pytest.mark.parametrize("g_arch,d_arch", [("transgan", "conv"), ("conv", "vit"), ("conv", "conv")])
def test_table1_pairings_train_one_step(g_arch, d_arch):
    from transgan_lab.trainers import losses
    from transgan_lab.trainers.augment import DiffAugment

    sets = [f"model.g.arch={g_arch}", f"model.d.arch={d_arch}", "model.g.conv_ch=32", "model.d.conv_ch=32"]
    if d_arch == "conv":
        sets.append("model.d.pixel_clusters=0")  # the conv D has no cluster projection
    cfg = load_config("digits-tiny", sets)
    torch.manual_seed(0)
    G, D = build_generator(cfg), build_discriminator(cfg)
    aug = DiffAugment(cfg.augment)
    z = torch.randn(2, G.latent_dim)
    fake = G(z, locality_width=None)
    assert fake.shape == (2, 1, 16, 16)
    real = torch.rand(2, 1, 16, 16) * 2 - 1
    y = {}
    if d_arch != "conv":  # the preset's clusters: the conv G's latent cells against the real images' clusters
        y = {"y_real": D.clusters.assign(real), "y_fake": G.cells.cell(z)}
    loss_d, _ = losses.d_loss(D, real, fake, aug, cfg.loss, **y)
    loss_d.backward()
    loss_g, _ = losses.g_loss(D, G(z), aug, cfg.loss, y=y.get("y_fake"))
    loss_g.backward()
    assert torch.isfinite(loss_d) and torch.isfinite(loss_g)
    assert all(p.grad is not None for p in G.parameters())


def test_conv_baselines_at_paper_resolutions():
    for preset, side in (("cifar10-s", 32), ("stl10-xl", 48), ("celeba64-xl", 64)):
        cfg = load_config(
            preset,
            [
                "model.g.arch=conv",
                "model.d.arch=conv",
                "model.mtct.enabled=false",
                "model.g.locality.enabled=false",
                "model.g.conv_ch=16",
                "model.d.conv_ch=16",
            ],
        )
        G, D = build_generator(cfg), build_discriminator(cfg)
        x = G(torch.randn(2, G.latent_dim))
        assert tuple(x.shape) == (2, 3, side, side) and tuple(D(x).shape) == (2,)
        assert x.abs().max() <= 1  # the SNGAN baseline ends in tanh


def test_initialisation_follows_the_facts():
    torch.manual_seed(0)
    cfg = load_config("cifar10-v2", ["model.d.embed_dim=64"])
    D = build_discriminator(cfg)
    fc1 = D.stage2[0].mlp.fc1
    assert abs(fc1.weight.std().item() - 0.02) < 0.002  # trunc-normal std 0.02
    assert fc1.bias.abs().sum() == 0 and D.stage2[0].attn.qkv.bias is None
    assert torch.equal(D.norm.weight, torch.ones(64)) and D.norm.bias.abs().sum() == 0
    fan_in, fan_out = 3 * 2 * 2, 48 * 2 * 2
    bound = (6 / (fan_in + fan_out)) ** 0.5  # xavier-uniform on the patch conv
    assert D.embed1.weight.abs().max() <= bound and D.embed1.weight.abs().max() > 0.9 * bound
    tiny = load_config("digits-tiny", [])
    G = build_generator(tiny)
    last_width = tiny.model.g.embed_dim // 4 ** (len(tiny.model.g.depths) - 1)  # PixelShuffle quarters it per stage
    head_bound = (6 / (last_width + 1)) ** 0.5  # xavier-uniform on the 1x1 head conv (1 output channel)
    assert G.head.weight.abs().max() <= head_bound
    assert abs(G.pos_embed[0].std().item() - 0.02) < 0.002


def test_pixelnorm_divides_by_channel_rms():
    from transgan_lab.trainers.models.blocks import PixelNorm

    x = torch.tensor([[[3.0, 4.0], [0.0, 2.0]]])
    y = PixelNorm()(x)
    torch.testing.assert_close(y, torch.tensor([[[3.0, 4.0], [0.0, 2.0]]]) / torch.tensor([[[12.5**0.5], [2**0.5]]]))


def test_bad_model_settings_fail_early_with_the_field_named():
    cfg = load_config("celeba64-xl", ["model.g.window_size=12"])
    with torch.device("meta"), pytest.raises(ValueError, match=r"model.g.window_size=12 does not divide the 64x64"):
        build_generator(cfg)
    cfg = load_config("digits-tiny", ["model.d.norm=pn", "model.d.act=leakyrelu", "model.g.act=leakyrelu"])
    with torch.device("meta"):
        D, G = build_discriminator(cfg), build_generator(cfg)
        z = torch.zeros(2, G.latent_dim)
        assert tuple(D(G(z), *_cells(D, G, z)).shape) == (2,)


def test_v2_d_last_block_has_noise_injection_like_the_official_d():
    # The official ViT_custom_scale2_rp_noise adds learned-strength noise in every block, the last
    # one (after the [cls] token) included: 10,210,400 parameters, the last one that strength.
    cfg = load_config(
        "cifar10-v2", ["data.resolution=16", "model.g.bottom=4", "model.d.embed_dim=32", "model.d.depth=1"]
    )
    torch.manual_seed(0)
    D = build_discriminator(cfg).eval()
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        D.last_block.attn.noise_strength.fill_(0.5)
        for blk in (*D.stage1, *D.stage2):
            blk.attn.noise_strength.zero_()
        torch.manual_seed(1)
        a = D(x)
        torch.manual_seed(2)
        b = D(x)
        torch.manual_seed(1)
        assert torch.equal(D(x), a) and not torch.allclose(a, b)  # the last block's noise reaches the output
    with torch.device("meta"):
        assert _params(build_discriminator(load_config("cifar10-v2", []))) == 10_210_400


def test_tanh_output_is_the_plain_output_squashed():
    torch.manual_seed(0)
    plain = build_generator(load_config("digits-tiny", ["model.g.out_act=none"]))
    torch.manual_seed(0)
    squashed = build_generator(load_config("digits-tiny", ["model.g.out_act=tanh"]))
    z = torch.randn(4, plain.latent_dim) * 3
    raw, out = plain(z), squashed(z)
    torch.testing.assert_close(out, torch.tanh(raw))
    assert out.abs().max() <= 1 and sum(p.numel() for p in plain.parameters()) == sum(
        p.numel() for p in squashed.parameters()
    )
