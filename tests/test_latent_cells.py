"""Latent cells (model.g.latent_classes): the cell is a fixed function of z, uniform for Gaussian z;
each cell moves G's first projection (TransGAN and conv G alike); the engine trains the cells'
offsets and checkpoints them."""

from __future__ import annotations

import pytest
import torch

from transgan_lab.platform.config import load_config
from transgan_lab.trainers.models import build_generator

TINY = [
    "model.g.embed_dim=64",
    "model.g.depths=[1,1,1]",
    "model.g.latent_dim=16",
    "model.d.embed_dim=32",
    "model.d.depth=1",
    "model.g.latent_classes=0",  # the preset has 10 cells; each test sets its own
    "model.d.pixel_clusters=0",  # and D conditioned on them (tests/test_pixel_clusters.py)
]


def test_cell_is_the_argmax_of_the_first_k_entries_and_uniform_for_gaussian_z():
    torch.manual_seed(0)
    G = build_generator(load_config("digits-tiny", TINY + ["model.g.latent_classes=4"]))
    z = torch.randn(40_000, 16)
    cells = G.cells.cell(z)
    assert torch.equal(cells, z[:, :4].argmax(dim=1))
    counts = torch.bincount(cells, minlength=4).float() / len(z)
    assert counts.sub(0.25).abs().max() < 0.01  # 4 sigma of a binomial share at n = 40,000 is 0.0087
    # The rest of z does not enter the cell.
    z2 = z[:8].clone()
    z2[:, 4:] = torch.randn(8, 12)
    assert torch.equal(G.cells.cell(z2), cells[:8])


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
    assert torch.equal(moved, G.cells.cell(z) == 1) and moved.any() and not moved.all()
    # The conv baseline takes the same latent: its cells move its first feature map.
    conv = build_generator(load_config("digits-tiny", TINY + ["model.g.latent_classes=3", "model.g.arch=conv"])).eval()
    with torch.no_grad():
        before = conv(z)
        conv.cells.offset.weight[int(conv.cells.cell(z[:1]))].zero_()
        after = conv(z)
    moved = (before - after).flatten(1).abs().amax(dim=1) > 0
    assert torch.equal(moved, conv.cells.cell(z) == conv.cells.cell(z[:1]))
    # Without cells the generator has no offsets and the same parameter count as before the option.
    plain = build_generator(load_config("digits-tiny", TINY))
    extra = sum(p.numel() for p in G.parameters()) - sum(p.numel() for p in plain.parameters())
    assert plain.cells is None and extra == 3 * 4 * 4 * 64


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["model.g.latent_classes=65"], "model.g.latent_classes=65 exceeds model.g.latent_dim=64"),
    ],
)
def test_bad_cell_settings_fail_early_with_the_field_named(overrides, message):
    with pytest.raises(Exception, match=message):
        load_config("digits-tiny", overrides)


def test_training_moves_every_cell_offset(tmp_path):
    # 8 steps of the real engine on digits with 4 cells: every cell is drawn in each batch of 16, so
    # Adam moves every row of the offset table. (Checkpoints and resume with cells: tests/test_train.py,
    # whose runs start from the preset's 10 cells.)
    from transgan_lab.trainers.trainer import Trainer

    cfg = load_config(
        "digits-tiny",
        TINY + ["model.g.latent_classes=4", "optim.batch_d=16", "optim.batch_g=16", "train.precision=fp32"],
    )
    t = Trainer(cfg, out_dir=tmp_path, device="cpu")
    before = t.G.cells.offset.weight.detach().clone()
    acc: dict = {}
    for _ in range(8):
        t.step(acc)
    after = t.G.cells.offset.weight.detach()
    assert after.shape == (4, 4 * 4 * 64) and torch.isfinite(after).all()
    moved = (after - before).abs().amax(dim=1)
    assert (moved > 1e-4).all(), moved


def test_with_cell_draws_z_given_its_cell():
    # Swapping the largest of the first K entries into the cell's place: the cell is the one asked
    # for, the K values and the rest of z are kept, and the result is distributed as z given its cell.
    torch.manual_seed(0)
    G = build_generator(load_config("digits-tiny", TINY + ["model.g.latent_classes=4"]))
    z = torch.randn(200_000, 16)
    want = torch.randint(0, 4, (200_000,))
    forced = G.cells.with_cell(z, want)
    assert torch.equal(G.cells.cell(forced), want)
    assert torch.equal(forced[:, 4:], z[:, 4:])
    assert torch.equal(forced[:, :4].sort(dim=1).values, z[:, :4].sort(dim=1).values)
    keep = G.cells.cell(z) == want  # already in the wanted cell: unchanged
    assert torch.equal(forced[keep], z[keep])
    # E[z_j | cell 2]: 1.03 at j = 2 and -0.34 elsewhere (4 iid normals); both ways agree within 0.02
    natural = z[G.cells.cell(z) == 2, :4].mean(dim=0)
    drawn = forced[want == 2, :4].mean(dim=0)
    assert (natural - drawn).abs().max() < 0.02, (natural, drawn)
    assert natural[2] > 1.0 and (natural[[0, 1, 3]] < -0.3).all()
