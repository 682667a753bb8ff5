"""Pixel clusters (model.d.pixel_clusters): k-means finds separated modes and is deterministic in its
seed; D's projection term starts at zero and scores each image under its own cluster; the engine
fits the centroids on the training data, conditions D on real clusters and latent cells, and a
checkpoint carries the centroids."""

from __future__ import annotations

import pytest
import torch

from transgan_lab.platform.config import load_config
from transgan_lab.trainers import losses
from transgan_lab.trainers.models import build_discriminator
from transgan_lab.trainers.models.clusters import kmeans

TINY = [
    "model.g.embed_dim=64",
    "model.g.depths=[1,1,1]",
    "model.g.latent_dim=16",
    "model.d.embed_dim=32",
    "model.d.depth=1",
    "model.g.latent_classes=4",
    "model.d.pixel_clusters=4",
]


def test_kmeans_finds_separated_blobs_and_is_deterministic_in_its_seed():
    gen = torch.Generator().manual_seed(0)
    means = torch.tensor([[-6.0, 0, 0], [6.0, 0, 0], [0, 6.0, 0], [0, 0, -6.0]])
    sizes = [50, 120, 80, 30]
    x = torch.cat([m + torch.randn(n, 3, generator=gen) for m, n in zip(means, sizes)])
    c = kmeans(x, 4, seed=3)
    # each blob mean has one centroid within 0.5 (blob means are 8.5+ apart, sample means within ~0.3)
    d = torch.cdist(means, c)
    assert torch.equal(d.argmin(dim=1).sort().values, torch.arange(4)), d
    assert (d.min(dim=1).values < 0.5).all(), d
    assert torch.equal(kmeans(x, 4, seed=3), c)
    with pytest.raises(ValueError, match="k-means with 5 clusters needs at least 5 images, got 4"):
        kmeans(x[:4], 5, seed=0)


def test_projection_starts_at_zero_and_scores_each_image_under_its_cluster():
    torch.manual_seed(0)
    cfg = load_config("digits-tiny", TINY)
    D = build_discriminator(cfg).eval()
    plain = build_discriminator(load_config("digits-tiny", TINY + ["model.d.pixel_clusters=0"])).eval()
    missing, unexpected = plain.load_state_dict(D.state_dict(), strict=False)
    assert missing == [] and sorted(unexpected) == ["clusters.centroids", "clusters.embed.weight"]
    x = torch.randn(6, 1, 16, 16)
    y = torch.tensor([0, 1, 2, 3, 1, 0])
    with torch.no_grad():
        assert torch.equal(D(x, y), plain(x))  # zero embedding: D starts unconditional
        D.clusters.embed.weight[1].fill_(0.5)  # only images scored under cluster 1 change
        moved = (D(x, y) - plain(x)).abs() > 0
    assert torch.equal(moved, y == 1)
    with pytest.raises(ValueError, match=r"conditioned on clusters \(model.d.pixel_clusters>0\); call D\(x, y\)"):
        D(x)
    with pytest.raises(ValueError, match=r"has no clusters \(model.d.pixel_clusters=0\); call D\(x\)"):
        plain(x, y)
    # The nearest centroid in pixel space is the cluster of an image.
    D.clusters.centroids.copy_(torch.stack([torch.full((256,), v) for v in (-1.0, -0.3, 0.3, 1.0)]))
    imgs = torch.stack([torch.full((1, 16, 16), v) for v in (0.9, -0.8, 0.2, -0.2, 0.6, 0.7)])
    assert D.clusters.assign(imgs).tolist() == [3, 0, 2, 1, 2, 3]  # 0.6: 0.3 from 0.3, 0.4 from 1.0


def test_d_loss_scores_fakes_under_their_cells_and_the_penalty_under_the_real_clusters():
    torch.manual_seed(0)
    cfg = load_config("digits-tiny", TINY)
    D = build_discriminator(cfg)
    with torch.no_grad():
        D.clusters.embed.weight.normal_()
    real, fake = torch.randn(4, 1, 16, 16), torch.randn(4, 1, 16, 16)
    y_real = torch.tensor([0, 1, 2, 3])
    alpha = torch.rand(4)

    def loss(y_fake, y_r=y_real):
        torch.manual_seed(1)  # same noise everywhere (none in this D, but cheap insurance)
        out, stats = losses.d_loss(D, real, fake, lambda v: v, cfg.loss, gp_alpha=alpha, y_real=y_r, y_fake=y_fake)
        return out.item(), stats["d_fake"].item(), stats["loss_gp"].item()

    base = loss(torch.tensor([0, 0, 0, 0]))
    other = loss(torch.tensor([3, 3, 3, 3]))
    assert base[1] != other[1] and base[2] == other[2]  # fakes' cells move their scores, not the penalty
    moved_real = loss(torch.tensor([0, 0, 0, 0]), y_r=torch.tensor([3, 2, 1, 0]))
    assert moved_real[2] != base[2]  # the interpolates are scored under the real images' clusters
    g, _ = losses.g_loss(D, fake, lambda v: v, cfg.loss, y=torch.tensor([0, 0, 0, 0]))
    assert g.item() == pytest.approx(-base[1], rel=1e-6)  # G's loss scores its fakes under their cells too


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["model.g.latent_classes=0"], "model.d.pixel_clusters=4 needs model.g.latent_classes=4"),
        (["model.g.latent_classes=5"], "got latent_classes=5: set both to the same K"),
        (["model.d.arch=conv", "model.g.arch=conv"], "model.d.pixel_clusters needs a transformer D"),
    ],
)
def test_bad_cluster_settings_fail_early_with_the_field_named(overrides, message):
    with pytest.raises(Exception, match=message):
        load_config("digits-tiny", TINY + overrides)


def test_engine_fits_the_centroids_trains_the_projection_and_checkpoints_them(tmp_path):
    # The real engine on digits: the centroids are k-means of the training images (each a weighted
    # mean of real digits, so inside [-1, 1], and every cluster holds images); 8 steps move every row
    # of the projection (each batch of 16 holds every cluster and cell); a resumed trainer reads the
    # same centroids back from the checkpoint.
    from transgan_lab.trainers import checkpoint as ckpt
    from transgan_lab.trainers.trainer import Trainer

    cfg = load_config("digits-tiny", TINY + ["optim.batch_d=16", "optim.batch_g=16", "train.precision=fp32"])
    t = Trainer(cfg, out_dir=tmp_path, device="cpu")
    proj = t.D.clusters
    c = proj.centroids.clone()
    assert c.shape == (4, 256) and c.abs().amax() <= 1.0 and c.std() > 0.1
    sizes = torch.bincount(proj.assign(t.dataset.get_batch(torch.arange(len(t.dataset)))), minlength=4)
    assert (sizes > 100).all() and sizes.sum() == len(t.dataset) == 1797, sizes
    assert torch.equal(c, kmeans(t.dataset.get_batch(torch.arange(1797)).flatten(1), 4, seed=cfg.seed))
    acc: dict = {}
    for _ in range(8):
        t.step(acc)
    moved = proj.embed.weight.detach().abs().amax(dim=1)
    assert (moved > 1e-4).all(), moved
    # The checkpoint holds the centroids the run used: a resumed trainer gets them back, not a refit.
    with torch.no_grad():
        proj.centroids.add_(0.01)
    path = t.save()
    assert torch.equal(ckpt.load_checkpoint(path)[1]["D"]["clusters.centroids"], c + 0.01)
    t2 = Trainer(cfg, out_dir=tmp_path / "again", device="cpu")
    assert torch.equal(t2.D.clusters.centroids, c)  # fitted again from the same data and seed
    t2.resume(path, allow_config_change=False)
    assert torch.equal(t2.D.clusters.centroids, c + 0.01)


def test_the_recipe_space_keeps_the_clusters_equal_to_the_cells():
    # The recipe study draws the cell count; D's clusters must follow it or the config is refused.
    import optuna

    from transgan_lab.platform.sweep.space import _ask_params, apply_params, check_space
    from transgan_lab.platform.sweep.spaces import recipe

    cfg = load_config("digits-tiny", ["model.g.latent_classes=10", "model.d.pixel_clusters=10"])
    base = cfg.model_dump(mode="json")
    check_space(base, "recipe", draws=16)  # every draw validates
    seen = set()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(24):
        params = _ask_params(study, recipe, base)
        d = apply_params(base, params)["model"]
        assert d["d"]["pixel_clusters"] == d["g"]["latent_classes"], params
        seen.add(d["g"]["latent_classes"])
    assert seen == {0, 10, 20}


@pytest.mark.parametrize("share", [False, True])
def test_each_d_update_draws_its_fakes_in_the_clusters_of_its_real_batch(tmp_path, share):
    # Both sides of D's loss then hold every cluster equally often (a per-cluster constant in D's
    # score cancels). With shared fakes, the G update's latents are the last D update's fakes.
    from transgan_lab.trainers.step import draw_inputs
    from transgan_lab.trainers.trainer import Trainer

    sets = ["optim.batch_d=16", "optim.batch_g=16", "optim.n_critic=2", f"optim.share_fakes={str(share).lower()}"]
    t = Trainer(load_config("digits-tiny", TINY + sets), out_dir=tmp_path, device="cpu")
    inputs = draw_inputs(t)
    cells = t.G.cells.cell
    for k, real in enumerate(inputs.reals):
        y = t.D.clusters.assign(real)
        z = inputs.z_g if inputs.z_d[k] is None else inputs.z_d[k]
        assert torch.equal(cells(z[: len(y)]), y), k
    assert (inputs.z_d[1] is None) == share
    assert len(torch.unique(torch.cat([t.D.clusters.assign(r) for r in inputs.reals]))) > 1
