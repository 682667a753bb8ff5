"""Latent cells (model.g.latent_classes) and the info term (loss.info_weight): the cell is a fixed
function of z, each cell moves G's first token grid, D's cell head is trained by the cross-entropy of
its prediction, and a short real training run teaches D to tell the cells apart."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from transgan_lab.platform.config import load_config
from transgan_lab.trainers import losses
from transgan_lab.trainers.models import build_discriminator, build_generator
from transgan_lab.trainers.models.latent import latent_class
from transgan_lab.trainers.train import train

TINY = [
    "model.g.embed_dim=64",
    "model.g.depths=[1,1,1]",
    "model.g.latent_dim=16",
    "model.d.embed_dim=32",
    "model.d.depth=1",
    "model.g.latent_classes=0",  # the preset has 10 cells; each test sets its own
]


def _identity(x):
    return x


def test_cell_is_the_argmax_of_the_first_k_entries_and_uniform_for_gaussian_z():
    torch.manual_seed(0)
    G = build_generator(load_config("digits-tiny", TINY + ["model.g.latent_classes=4"]))
    z = torch.randn(40_000, 16)
    cells = latent_class(G, z)
    assert torch.equal(cells, z[:, :4].argmax(dim=1))
    counts = torch.bincount(cells, minlength=4).float() / len(z)
    assert counts.sub(0.25).abs().max() < 0.01  # 4 sigma of a binomial share at n = 40,000 is 0.0087
    # The rest of z does not enter the cell.
    z2 = z[:8].clone()
    z2[:, 4:] = torch.randn(8, 12)
    assert torch.equal(latent_class(G, z2), cells[:8])


def test_each_cell_adds_its_own_offset_to_the_first_token_grid():
    torch.manual_seed(0)
    cfg = load_config("digits-tiny", TINY + ["model.g.latent_classes=3"])
    G = build_generator(cfg).eval()
    z = torch.randn(6, 16)
    with torch.no_grad():
        before = G(z)
        G.cells.offset.weight[1].zero_()  # only samples of cell 1 change
        after = G(z)
    moved = (before - after).flatten(1).abs().amax(dim=1) > 0
    assert torch.equal(moved, latent_class(G, z) == 1) and moved.any() and not moved.all()
    # The conv baseline takes the same latent: its cells move its first feature map.
    conv = build_generator(load_config("digits-tiny", TINY + ["model.g.latent_classes=3", "model.g.arch=conv"])).eval()
    with torch.no_grad():
        before = conv(z)
        conv.cells.offset.weight[int(latent_class(conv, z[:1]))].zero_()
        after = conv(z)
    moved = (before - after).flatten(1).abs().amax(dim=1) > 0
    assert torch.equal(moved, latent_class(conv, z) == latent_class(conv, z[:1]))
    # Without cells the generator has no offsets and the same parameter count as before the option.
    plain = build_generator(load_config("digits-tiny", TINY))
    extra = sum(p.numel() for p in G.parameters()) - sum(p.numel() for p in plain.parameters())
    assert plain.cells is None and extra == 3 * 4 * 4 * 64


def test_d_cell_head_shares_the_score_and_the_info_term_is_the_cross_entropy():
    torch.manual_seed(0)
    cfg = load_config("digits-tiny", TINY + ["model.g.latent_classes=5", "loss.info_weight=0.5"])
    G, D = build_generator(cfg), build_discriminator(cfg)
    z = torch.randn(8, 16)
    fake, real = G(z).detach(), torch.rand(8, 1, 16, 16) * 2 - 1
    scores, logits = D(fake, q=True)
    assert logits.shape == (8, 5) and torch.equal(scores, D(fake))
    cells = latent_class(G, z)

    loss, stats = losses.d_loss(D, real, fake, _identity, cfg.loss, fake_class=cells)
    plain, _ = losses.d_loss(D, real, fake, _identity, cfg.loss, gp_alpha=None)
    ce = F.cross_entropy(logits, cells)
    assert stats["loss_info_d"] == pytest.approx(ce.item(), rel=1e-5)
    # The GP draws its own mixing weights from the global RNG, so compare with the penalty removed.
    no_gp = cfg.model_copy(update={"loss": cfg.loss.model_copy(update={"gp_weight": 0.0})})
    l_info, _ = losses.d_loss(D, real, fake, _identity, no_gp.loss, fake_class=cells)
    l_plain, _ = losses.d_loss(D, real, fake, _identity, no_gp.loss)
    assert (l_info - l_plain).item() == pytest.approx(0.5 * ce.item(), rel=1e-5)
    assert torch.isfinite(loss) and torch.isfinite(plain)
    # D's cell rows get a gradient from the info term; G gets one through its images in g_loss.
    l_info.backward()
    assert D.head.weight.grad[1:].abs().sum() > 0
    fake_g = G(z)
    lg, gstats = losses.g_loss(D, fake_g, _identity, cfg.loss, fake_class=cells)
    lg_plain, _ = losses.g_loss(D, fake_g, _identity, cfg.loss)
    assert (lg - lg_plain).item() == pytest.approx(0.5 * gstats["loss_info_g"].item(), rel=1e-5)


def test_cell_head_off_by_default_and_a_clear_error_when_asked_for():
    D = build_discriminator(load_config("digits-tiny", TINY))
    assert D.head.out_features == 1 and load_config("digits-tiny").loss.info_weight == 0
    with pytest.raises(ValueError, match="q_classes > 0"):
        D(torch.zeros(2, 1, 16, 16), q=True)
    # Cells alone do not grow D (no info term, nothing to predict).
    assert build_discriminator(load_config("digits-tiny", TINY + ["model.g.latent_classes=4"])).head.out_features == 1


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["loss.info_weight=1", "model.g.latent_classes=0"], "loss.info_weight=1 needs latent cells to predict"),
        (["model.g.latent_classes=65"], "model.g.latent_classes=65 exceeds model.g.latent_dim=64"),
        (
            ["model.g.latent_classes=4", "loss.info_weight=1", "model.d.arch=conv"],
            "a transformer D",
        ),
    ],
)
def test_bad_cell_settings_fail_early_with_the_field_named(overrides, message):
    with pytest.raises(Exception, match=message):
        load_config("digits-tiny", overrides)


def test_training_with_the_info_term_teaches_d_to_tell_the_cells_apart(tmp_path):
    # 96 steps of the real engine on digits; the info loss starts at log K (D guesses) and falls as
    # D's head learns the cells and G keeps them apart.
    steps, per_step = 96, 32
    cfg = load_config(
        "digits-tiny",
        TINY
        + [
            "model.g.latent_classes=4",
            "loss.info_weight=5",  # with high learning rates: a short test
            "optim.batch_d=16",
            "optim.batch_g=16",
            "optim.n_critic=2",
            "optim.lr_d=2e-3",
            "optim.lr_g=2e-3",
            "train.precision=fp32",
            f"train.kimg={steps * per_step / 1000}",
            f"train.log_kimg={12 * per_step / 1000}",
            f"train.checkpoint_kimg={steps * per_step / 1000}",
            "train.grid_kimg=0",
            "train.deterministic=true",
        ],
    )

    class Reporter:
        calls: list = []

        def report(self, metrics, checkpoint_dir=None, files=None):
            self.calls.append(dict(metrics))

    rep = Reporter()
    train(cfg, rep, out_dir=tmp_path)
    info_d = [m["loss_info_d"] for m in rep.calls]
    info_g = [m["loss_info_g"] for m in rep.calls]
    assert len(info_d) == 8 and all(math.isfinite(v) for v in info_d + info_g)
    assert info_d[0] > 0.8 * math.log(4)  # the first 12 steps: still guessing
    assert info_d[-1] < 0.4 * math.log(4) and info_g[-1] < 0.4 * math.log(4), (info_d, info_g)
