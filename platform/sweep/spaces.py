"""Define-by-run Optuna search spaces for `transgan-lab sweep` (``sweep.space`` / ``--space``).

A space is a function ``space(trial, base) -> dict | None``: ``trial`` is an Optuna trial (use
``trial.suggest_*``), ``base`` the resolved preset as a plain dict. Parameter names are dotted
config keys (``model.g.embed_dim``; list items as ``model.g.depths.0``); the returned dict holds
values that cannot be Optuna choices (lists such as ``augment.policy``) and overrides the
suggestion of the same name. ``paper_point(space, base)`` is the preset itself expressed in the
same parameters: the sweep evaluates it first.

Choices always contain the preset's own value, so the paper point lies inside the space. The
number of stage-depth parameters follows the preset's number of generator stages. Every sampled
config is validated by the platform before any trial starts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# Named locality-aware initialisation schedules: ([[start_epoch, half_width], ...], off_epoch).
LOCALITY_SCHEDULES = {
    "paper": ([[0, 4], [22, 6], [32, 8], [42, 10]], 60),  # the paper's CIFAR schedule
    "short": ([[0, 2], [2, 4], [4, 6]], 8),  # widens over a few epochs (short runs, digits)
    "early": ([[0, 3]], 1),  # one narrow epoch, then global attention
}

AUG_POLICIES = ["translation", "translation,cutout", "translation,cutout,color", "translation,color"]


def _with(choices: list, value: Any) -> list:
    """``choices`` plus the preset's value (so the paper point is inside the space), sorted."""
    out = list(dict.fromkeys(list(choices) + [value]))
    try:
        return sorted(out)
    except TypeError:
        return out


def _span(bounds: tuple, value: float) -> tuple:
    """A (lo, hi) range widened to hold the preset's value (so the paper point is inside the space)."""
    return (min(bounds[0], value), max(bounds[1], value))


class _Spec:
    """One family of TransGAN spaces: ranges per dimension, conditional on the preset."""

    def __init__(
        self, *, embed_dims, depth_hi, heads, d_depth, patch_sizes, policies, mtct_weight, schedules, lr, n_critic
    ):
        self.embed_dims = embed_dims  # generator widths of the first stage
        self.depth_hi = depth_hi  # max blocks per stage: [stage 0, stage 1, further stages]
        self.heads = heads  # generator heads (kept only where they divide every stage width)
        self.d_depth = d_depth  # (lo, hi) discriminator blocks
        self.patch_sizes = patch_sizes  # discriminator patch sides (kept where they divide the image)
        self.policies = policies  # DiffAugment policies, comma-joined
        self.mtct_weight = mtct_weight  # (lo, hi) of lambda, log scale
        self.schedules = schedules  # names in LOCALITY_SCHEDULES
        self.lr = lr  # (lo, hi) of both learning rates, log scale
        self.n_critic = n_critic  # (lo, hi) D steps per G step

    # -- choices for a given preset ----------------------------------------------------------
    def choices(self, base: dict) -> dict:
        g, d = base["model"]["g"], base["model"]["d"]
        n = len(g["depths"])
        widths = _with(self.embed_dims, g["embed_dim"])
        heads = [h for h in self.heads if all((w // 4**i) % h == 0 for w in widths for i in range(n) if w // 4**i)]
        res = base["data"]["resolution"]
        step = 2 if d["arch"] == "multiscale" else 1
        patches = [p for p in self.patch_sizes if res % (p * step) == 0]
        depth_ranges = []
        for i in range(n):
            hi = self.depth_hi[min(i, len(self.depth_hi) - 1)]
            depth_ranges.append((min(1, g["depths"][i]), max(hi, g["depths"][i])))
        return {
            "model.g.embed_dim": widths,
            "depths": depth_ranges,
            "model.g.heads": _with(heads, g["heads"]),
            "model.d.depth": _span(self.d_depth, d["depth"]),
            "model.d.patch_size": _with(patches, d["patch_size"]),
            "augment.policy": _with(self.policies, ",".join(base["augment"]["policy"])),
            "model.mtct.weight": _span(self.mtct_weight, base["model"]["mtct"]["weight"]),
            "model.g.locality.schedule": ["preset"] + list(self.schedules),
            "optim.lr_g": _span(self.lr, base["optim"]["lr_g"]),
            "optim.lr_d": _span(self.lr, base["optim"]["lr_d"]),
            "optim.n_critic": _span(self.n_critic, base["optim"]["n_critic"]),
        }

    # -- the define-by-run function ------------------------------------------------------------
    def sample(self, trial, base: dict) -> dict:
        c = self.choices(base)
        out: dict[str, Any] = {}
        trial.suggest_categorical("model.g.embed_dim", c["model.g.embed_dim"])
        for i, (lo, hi) in enumerate(c["depths"]):  # one depth per generator stage of the preset
            trial.suggest_int(f"model.g.depths.{i}", lo, hi)
        trial.suggest_categorical("model.g.heads", c["model.g.heads"])
        trial.suggest_int("model.d.depth", *c["model.d.depth"])
        trial.suggest_categorical("model.d.patch_size", c["model.d.patch_size"])
        policy = trial.suggest_categorical("augment.policy", c["augment.policy"])
        out["augment.policy"] = [p for p in policy.split(",") if p]
        if trial.suggest_categorical("model.mtct.enabled", [False, True]):
            trial.suggest_float("model.mtct.weight", *c["model.mtct.weight"], log=True)
        if trial.suggest_categorical("model.g.locality.enabled", [False, True]):
            name = trial.suggest_categorical("model.g.locality.schedule", c["model.g.locality.schedule"])
            if name != "preset":
                schedule, off = LOCALITY_SCHEDULES[name]
                out["model.g.locality.schedule"] = schedule
                out["model.g.locality.off_epoch"] = off
            else:
                out["model.g.locality.schedule"] = base["model"]["g"]["locality"]["schedule"]
        trial.suggest_float("optim.lr_g", *c["optim.lr_g"], log=True)
        trial.suggest_float("optim.lr_d", *c["optim.lr_d"], log=True)
        # Intervals are in kimg, so reports, evaluations and ASHA's rungs fall at equal images seen
        # whatever n_critic a trial draws.
        trial.suggest_int("optim.n_critic", *c["optim.n_critic"])
        return out

    def paper(self, base: dict) -> dict:
        """The preset's values under the names ``sample`` suggests (only the active branches)."""
        g = base["model"]["g"]
        point: dict[str, Any] = {"model.g.embed_dim": g["embed_dim"]}
        for i, depth in enumerate(g["depths"]):
            point[f"model.g.depths.{i}"] = depth
        point.update(
            {
                "model.g.heads": g["heads"],
                "model.d.depth": base["model"]["d"]["depth"],
                "model.d.patch_size": base["model"]["d"]["patch_size"],
                "augment.policy": ",".join(base["augment"]["policy"]),
                "model.mtct.enabled": bool(base["model"]["mtct"]["enabled"]),
                "model.g.locality.enabled": bool(g["locality"]["enabled"]),
                "optim.lr_g": base["optim"]["lr_g"],
                "optim.lr_d": base["optim"]["lr_d"],
                "optim.n_critic": base["optim"]["n_critic"],
            }
        )
        if point["model.mtct.enabled"]:
            point["model.mtct.weight"] = base["model"]["mtct"]["weight"]
        if point["model.g.locality.enabled"]:
            point["model.g.locality.schedule"] = "preset"
        return point


_DIGITS = _Spec(
    embed_dims=[128, 256],
    depth_hi=[3, 2, 2],
    heads=[2, 4],
    d_depth=(2, 4),
    patch_sizes=[2, 4],
    policies=AUG_POLICIES[:3],
    mtct_weight=(5.0, 100.0),
    schedules=["short", "early"],
    lr=(5e-5, 5e-4),
    n_critic=(1, 5),
)

_CIFAR = _Spec(
    embed_dims=[384, 768, 1024],
    depth_hi=[5, 4, 2],
    heads=[2, 4, 8],
    d_depth=(4, 8),
    patch_sizes=[2, 4, 8],
    policies=AUG_POLICIES,
    mtct_weight=(5.0, 100.0),
    schedules=["paper", "short"],
    lr=(3e-5, 3e-4),
    n_critic=(1, 5),
)


class _Recipe:
    """The training recipe at a fixed architecture family: loss and penalty (WGAN-GP, or the
    non-saturating loss with R1), lazy regularisation, learning rates, Adam's beta1, n_critic,
    batch, EMA half-life, augmentation, MT-CT, latent cells (D's pixel clusters, when the base has
    them, follow their count), and the generator's first grid (4x4 with three stages or 8x8 with
    two, at the preset's first-stage width). For "which recipe learns fastest" studies (the digits
    time-to-quality study)."""

    LOSSES = ("wgan-gp-eps", "nsgan")
    POLICIES = ("", "translation", "translation,cutout")

    def sample(self, trial, base: dict) -> dict:
        out: dict[str, Any] = {}
        if trial.suggest_categorical("loss.kind", list(self.LOSSES)) == "nsgan":
            trial.suggest_float("loss.r1_gamma", 0.003, 0.3, log=True)
        else:
            out["loss.r1_gamma"] = 0.0
        trial.suggest_categorical("loss.reg_every", [1, 4])
        trial.suggest_float("optim.lr_g", 1e-4, 2e-3, log=True)
        trial.suggest_float("optim.lr_d", 1e-4, 2e-3, log=True)
        trial.suggest_categorical("optim.beta1", [0.0, 0.5])
        trial.suggest_int("optim.n_critic", 1, 4)
        batch = trial.suggest_categorical("optim.batch_d", sorted({32, 64, base["optim"]["batch_d"]}))
        out["optim.batch_g"] = batch
        trial.suggest_float("optim.ema_kimg", 2.0, 40.0, log=True)
        policy = trial.suggest_categorical("augment.policy", list(self.POLICIES))
        out["augment.policy"] = [p for p in policy.split(",") if p]
        if trial.suggest_categorical("model.mtct.enabled", [False, True]):
            trial.suggest_float("model.mtct.weight", 5.0, 100.0, log=True)
        g = base["model"]["g"]
        cells = trial.suggest_categorical("model.g.latent_classes", sorted({0, 10, 20, g["latent_classes"]}))
        if base["model"]["d"]["pixel_clusters"]:  # D's clusters are the cells: they follow the count
            out["model.d.pixel_clusters"] = cells
        bottom = trial.suggest_categorical("model.g.bottom", sorted({4, 8, g["bottom"]}))
        stages = {4: 3, 8: 2}.get(bottom, len(g["depths"]))
        if bottom * 2 ** (stages - 1) == base["data"]["resolution"] and bottom != g["bottom"]:
            out["model.g.depths"] = [2] + [1] * (stages - 1) if stages == 3 else [2, 2]
        return out

    def paper(self, base: dict) -> dict:
        point: dict[str, Any] = {"loss.kind": base["loss"]["kind"]}
        if base["loss"]["kind"] == "nsgan":
            point["loss.r1_gamma"] = base["loss"]["r1_gamma"]
        o = base["optim"]
        point.update(
            {
                "loss.reg_every": base["loss"]["reg_every"],
                "optim.lr_g": o["lr_g"],
                "optim.lr_d": o["lr_d"],
                "optim.beta1": o["beta1"],
                "optim.n_critic": o["n_critic"],
                "optim.batch_d": o["batch_d"],
                "optim.ema_kimg": o["ema_kimg"],
                "augment.policy": ",".join(base["augment"]["policy"]),
                "model.mtct.enabled": bool(base["model"]["mtct"]["enabled"]),
                "model.g.latent_classes": base["model"]["g"]["latent_classes"],
                "model.g.bottom": base["model"]["g"]["bottom"],
            }
        )
        if point["model.mtct.enabled"]:
            point["model.mtct.weight"] = base["model"]["mtct"]["weight"]
        return point


_RECIPE = _Recipe()


class _Demo:
    """`make demo`: the preset's recipe around its own point, at the preset's architecture and
    cost per image (learning rates, n_critic, EMA half-life, augmentation), so every trial of a
    short sweep on two cores learns and none is slow."""

    POLICIES = ("", "translation")

    def sample(self, trial, base: dict) -> dict:
        o = base["optim"]
        trial.suggest_float("optim.lr_g", *_span((2e-4, 1e-3), o["lr_g"]), log=True)
        trial.suggest_float("optim.lr_d", *_span((2e-4, 1e-3), o["lr_d"]), log=True)
        trial.suggest_int("optim.n_critic", *_span((1, 3), o["n_critic"]))
        trial.suggest_float("optim.ema_kimg", *_span((3.0, 30.0), o["ema_kimg"]), log=True)
        policy = trial.suggest_categorical("augment.policy", _with(self.POLICIES, ",".join(base["augment"]["policy"])))
        return {"augment.policy": [p for p in policy.split(",") if p]}

    def paper(self, base: dict) -> dict:
        o = base["optim"]
        return {
            "optim.lr_g": o["lr_g"],
            "optim.lr_d": o["lr_d"],
            "optim.n_critic": o["n_critic"],
            "optim.ema_kimg": o["ema_kimg"],
            "augment.policy": ",".join(base["augment"]["policy"]),
        }


_DEMO = _Demo()


def demo(trial, base: dict) -> dict | None:
    """`make demo`: learning rates, n_critic, EMA and augmentation around the preset (same cost per image)."""
    return _DEMO.sample(trial, base)


def recipe(trial, base: dict) -> dict | None:
    """The digits recipe at a fixed architecture (loss, penalty, lr, beta1, n_critic, EMA, augmentation,
    MT-CT, first grid)."""
    return _RECIPE.sample(trial, base)


def digits(trial, base: dict) -> dict | None:
    """Small TransGANs on the embedded digits data (fits a 2-core CPU)."""
    return _DIGITS.sample(trial, base)


def cifar(trial, base: dict) -> dict | None:
    """TransGAN-S/M-sized models for CIFAR-10 (32x32) and the like."""
    return _CIFAR.sample(trial, base)


SPACES: dict[str, tuple[Callable, Any]] = {
    "digits": (digits, _DIGITS),
    "cifar": (cifar, _CIFAR),
    "recipe": (recipe, _RECIPE),
    "demo": (demo, _DEMO),
}


def paper_point(space: str, base: dict) -> dict:
    """The preset's own setting in the parameters of ``space`` (evaluated first)."""
    return SPACES[space][1].paper(base)
