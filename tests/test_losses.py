"""Losses match hand computations; the gradient penalty equals its autograd definition through attention."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from transgan_lab.platform.config import load_config
from transgan_lab.trainers import losses
from transgan_lab.trainers.augment import DiffAugment
from transgan_lab.trainers.models import attention as A
from transgan_lab.trainers.models import build_generator
from transgan_lab.trainers.models.discriminator import ViTDiscriminator


class LinearD(torch.nn.Module):
    """D(x) = scale * mean(x): scores and input gradients are known in closed form."""

    def __init__(self, scale: float):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(scale))

    def forward(self, x):
        return self.scale * x.mean(dim=(1, 2, 3))


def _identity(x):
    return x


def _fixed():
    real = torch.tensor([0.5, -0.25, 1.0, 0.0]).view(4, 1, 1, 1).expand(4, 2, 3, 3).contiguous()
    fake = torch.tensor([-1.0, 0.75, 0.25, -0.5]).view(4, 1, 1, 1).expand(4, 2, 3, 3).contiguous()
    return real, fake


def _loss_cfg(kind, **kw):
    base = dict(kind=kind, gp_weight=10.0, phi=2.0, drift=1e-3)
    base.update(kw)
    return SimpleNamespace(**base)


def test_wgan_gp_eps_matches_hand_computation():
    real, fake = _fixed()
    D = LinearD(3.0)
    loss, stats = losses.d_loss(D, real, fake, _identity, _loss_cfg("wgan-gp-eps"))
    d_real = 3.0 * torch.tensor([0.5, -0.25, 1.0, 0.0])  # mean 0.9375
    d_fake = 3.0 * torch.tensor([-1.0, 0.75, 0.25, -0.5])  # mean -0.375
    grad_norm = 3.0 / math.sqrt(18)  # d/dx of 3*mean over 18 pixels, for every interpolate
    gp = (grad_norm - 2.0) ** 2
    hand = -d_real.mean() + d_fake.mean() + 10.0 / 2.0**2 * gp + 1e-3 * d_real.mean() ** 2
    torch.testing.assert_close(loss, hand.to(loss.dtype))
    torch.testing.assert_close(stats["loss_gp"], torch.tensor(gp, dtype=torch.float32))
    torch.testing.assert_close(stats["d_real"], d_real.mean())
    torch.testing.assert_close(stats["d_fake"], d_fake.mean())
    for v in stats.values():
        assert v.dim() == 0 and not v.requires_grad
    loss_nodrift, _ = losses.d_loss(D, real, fake, _identity, _loss_cfg("wgan-gp"))
    torch.testing.assert_close(loss - loss_nodrift, 1e-3 * d_real.mean() ** 2)


def test_hinge_and_nsgan_match_hand_computation():
    real, fake = _fixed()
    D = LinearD(3.0)
    d_real = 3.0 * torch.tensor([0.5, -0.25, 1.0, 0.0])
    d_fake = 3.0 * torch.tensor([-1.0, 0.75, 0.25, -0.5])
    hinge, st = losses.d_loss(D, real, fake, _identity, _loss_cfg("hinge"))
    torch.testing.assert_close(hinge, (1 - d_real).clamp(min=0).mean() + (1 + d_fake).clamp(min=0).mean())
    assert st["loss_gp"].item() == 0.0
    ns, _ = losses.d_loss(D, real, fake, _identity, _loss_cfg("nsgan"))
    hand = -(torch.sigmoid(d_real).log().mean()) - (1 - torch.sigmoid(d_fake)).log().mean()
    torch.testing.assert_close(ns, hand)
    g_w, gst = losses.g_loss(D, fake, _identity, _loss_cfg("wgan-gp-eps"))
    torch.testing.assert_close(g_w, -d_fake.mean())
    assert set(gst) >= {"loss_g"} and not gst["loss_g"].requires_grad
    g_h, _ = losses.g_loss(D, fake, _identity, _loss_cfg("hinge"))
    torch.testing.assert_close(g_h, -d_fake.mean())
    g_ns, _ = losses.g_loss(D, fake, _identity, _loss_cfg("nsgan"))
    torch.testing.assert_close(g_ns, -torch.sigmoid(d_fake).log().mean())


def test_r1_penalty_matches_hand_computation_and_lazy_weighting():
    real, fake = _fixed()
    D = LinearD(3.0)
    # d/dx of 3 * mean over 18 pixels is 3/18 at every pixel: ||grad||^2 = 18 * (3/18)^2 = 0.5
    r1 = losses.r1_penalty(D, real, _identity)
    torch.testing.assert_close(r1, torch.tensor(0.5))
    plain, _ = losses.d_loss(D, real, fake, _identity, _loss_cfg("nsgan"))
    for k in (1, 4):
        cfg = _loss_cfg("nsgan", r1_gamma=0.2, reg_every=k)
        on, st_on = losses.d_loss(D, real, fake, _identity, cfg, regularise=True)
        off, st_off = losses.d_loss(D, real, fake, _identity, cfg, regularise=False)
        torch.testing.assert_close(on - plain, torch.tensor(0.2 / 2 * 0.5 * k))  # gamma/2 * R1, weighted x k
        torch.testing.assert_close(off, plain)
        torch.testing.assert_close(st_on["loss_r1"], torch.tensor(0.5 * k))  # mean over k updates = R1
        assert st_off["loss_r1"].item() == 0.0
    # the gradient penalty is lazy the same way; off-steps carry no penalty at all
    wg = _loss_cfg("wgan-gp", reg_every=4)
    on, st = losses.d_loss(D, real, fake, _identity, wg, regularise=True)
    off, _ = losses.d_loss(D, real, fake, _identity, wg, regularise=False)
    gp = (3.0 / math.sqrt(18) - 2.0) ** 2
    torch.testing.assert_close(on - off, torch.tensor(10.0 / 2.0**2 * gp * 4))
    torch.testing.assert_close(st["loss_gp"], torch.tensor(gp * 4, dtype=torch.float32))


def test_r1_penalty_equals_autograd_definition_through_attention(monkeypatch):
    D = _small_vit_d()
    real = torch.rand(3, 2, 8, 8, generator=torch.Generator().manual_seed(2)) * 2 - 1
    r1 = losses.r1_penalty(D, real, _identity)
    r1.backward()  # double backward through SDPA (math backend)
    grads = {n: p.grad.clone() for n, p in D.named_parameters() if p.grad is not None}
    D.zero_grad()
    D64 = D.double()
    monkeypatch.setattr(A, "sdpa", A.naive_attention)
    x = real.double().requires_grad_(True)
    (grad,) = torch.autograd.grad(D64(x).sum(), x, create_graph=True)
    ref = grad.flatten(1).pow(2).sum(1).mean()
    ref.backward()
    torch.testing.assert_close(r1.double(), ref, rtol=1e-4, atol=1e-8)
    for n, p in D64.named_parameters():
        if n in grads:
            torch.testing.assert_close(grads[n].double(), p.grad, rtol=1e-3, atol=1e-8)


def test_unknown_loss_kind_is_a_clear_error():
    real, fake = _fixed()
    with pytest.raises(ValueError, match="loss.kind='lsgan' is unknown"):
        losses.d_loss(LinearD(1.0), real, fake, _identity, _loss_cfg("lsgan"))


def test_d_loss_does_not_backprop_into_fake():
    real, fake = _fixed()
    fake = fake.clone().requires_grad_(True)
    loss, _ = losses.d_loss(LinearD(3.0), real, fake, _identity, _loss_cfg("wgan-gp-eps"))
    loss.backward()
    assert fake.grad is None


def _small_vit_d():
    torch.manual_seed(0)
    return ViTDiscriminator(resolution=8, channels=2, patch_size=2, embed_dim=16, depth=2, heads=4, rel_pos_bias=True)


@pytest.mark.parametrize("policy", [[], ["translation", "cutout"]])
def test_gradient_penalty_equals_autograd_definition_through_attention(policy, monkeypatch):
    D = _small_vit_d()
    aug = DiffAugment(
        SimpleNamespace(
            policy=policy, translation_ratio=0.25, cutout_ratio=0.5, gate_prob=1.0, erase_min=0.2, erase_max=0.7
        )
    )
    g = torch.Generator().manual_seed(1)
    real = torch.rand(3, 2, 8, 8, generator=g) * 2 - 1
    fake = torch.rand(3, 2, 8, 8, generator=g) * 2 - 1
    torch.manual_seed(7)
    gp = losses.gradient_penalty(D, real, fake, aug, 1.0)
    gp.backward()  # the double backward through SDPA (math backend)
    grads = {n: p.grad.clone() for n, p in D.named_parameters() if p.grad is not None}
    assert grads["blocks.0.attn.qkv.weight"].abs().sum() > 0

    # reference: float64, naive materialised attention, the definition written out
    D.zero_grad()
    D64 = D.double()
    monkeypatch.setattr(A, "sdpa", A.naive_attention)
    torch.manual_seed(7)
    alpha = torch.rand(3, 1, 1, 1).double()
    x_hat = (alpha * real.double() + (1 - alpha) * fake.double()).requires_grad_(True)
    (grad,) = torch.autograd.grad(D64(aug(x_hat)).sum(), x_hat, create_graph=True)
    ref = ((grad.flatten(1).norm(dim=1) - 1.0) ** 2).mean()
    ref.backward()
    torch.testing.assert_close(gp.double(), ref, rtol=1e-4, atol=1e-6)
    for n, p in D64.named_parameters():
        if n in grads:
            torch.testing.assert_close(grads[n].double(), p.grad, rtol=1e-3, atol=1e-6)


def test_mtct_loss_is_mse_of_super_resolved_area_downsample():
    cfg = load_config("digits-tiny", ["model.mtct.enabled=true"])
    torch.manual_seed(0)
    G = build_generator(cfg)
    real = torch.rand(2, 1, 16, 16) * 2 - 1
    loss = losses.mtct_loss(G, real)
    lr = F.avg_pool2d(real, 4)  # area resize 16 -> 4 (bottom) is a 4x4 box average
    torch.testing.assert_close(loss, F.mse_loss(G.super_resolve(lr), real))
    loss.backward()
    assert G.sr_embed.weight.grad.abs().sum() > 0 and G.l1.weight.grad is None
    plain = build_generator(load_config("digits-tiny", []))
    with pytest.raises(ValueError, match="model.mtct.enabled=true"):
        losses.mtct_loss(plain, real)


def test_one_pass_generator_and_super_resolution_equal_separate_calls():
    cfg = load_config(
        "digits-tiny", ["model.mtct.enabled=true", "model.g.self_modulation=true", "model.g.modulation_tokens=2"]
    )
    torch.manual_seed(0)
    G = build_generator(cfg)
    z = torch.randn(3, G.latent_dim)
    real = torch.rand(2, 1, 16, 16) * 2 - 1
    lr = losses.downsample_for_mtct(real, side=G.bottom)
    fake, sr = G(z, lr_images=lr)
    assert fake.shape == (3, 1, 16, 16) and sr.shape == (2, 1, 16, 16)
    torch.testing.assert_close(fake, G(z), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(sr, G.super_resolve(lr), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(losses.mtct_mse(sr, real), losses.mtct_loss(G, real), rtol=1e-5, atol=1e-6)
    (fake.mean() + losses.mtct_mse(sr, real)).backward()
    assert G.l1.weight.grad.abs().sum() > 0 and G.sr_embed.weight.grad.abs().sum() > 0
