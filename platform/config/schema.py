"""The experiment config schema (pydantic v2): every section, its fields, and the cross-field checks.

A config is a complete experiment: data, models, loss, augmentation, optimisation, schedule,
evaluation, resources and tracking. Unknown keys are rejected and cross-field checks say which
field is wrong and how to fix it.

``trainers`` never imports this module: it reads the same attributes from whatever object it is
handed, so it stays importable with torch alone.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from transgan_lab import metric_registry
from transgan_lab.platform import validate as _validate


class ConfigError(_validate.InputError):
    """A config problem a user can fix; the message names the field and the fix."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=False)


# ----------------------------------------------------------------------------------------- data


class DataConfig(_Section):
    dataset: Literal["digits", "cifar10", "stl10", "celeba", "folder"] = "digits"
    root: str | None = None  # local folder of the dataset (not needed for digits)
    resolution: int = Field(16, ge=8, le=1024)  # square side in pixels
    channels: Literal[1, 3] = 3  # 1 = greyscale, 3 = RGB
    hflip: bool = False  # random horizontal flip (the paper's photos; never for digits)
    download: bool = False  # fetch the files when the network allows
    upscale: Literal["bilinear", "bicubic", "nearest"] = "bilinear"  # digits 8x8 -> resolution
    loader_workers: int = Field(0, ge=0)  # threads decoding image files (celeba, folder); 0/1 = one


# --------------------------------------------------------------------------------------- models


class LocalityConfig(_Section):
    """Locality-aware initialisation: a mask that widens by epoch, then disappears."""

    enabled: bool = False
    kind: Literal["band1d", "box2d"] = "band1d"  # 1-D raster band (official code) or 2-D box (figure)
    # [start_epoch, half_width] pairs, epochs ascending; the mask is removed at off_epoch.
    schedule: list[tuple[int, int]] = [(0, 4), (22, 6), (32, 8), (42, 10)]
    off_epoch: int = Field(60, ge=0)
    last_blocks: int = Field(1, ge=1)  # masked blocks at the end of the last stage

    @model_validator(mode="after")
    def _check(self) -> LocalityConfig:
        epochs = [e for e, _ in self.schedule]
        if self.enabled and not self.schedule:
            raise ValueError("model.g.locality.schedule is empty: give [[epoch, width], ...] or set enabled: false")
        if epochs != sorted(epochs) or len(set(epochs)) != len(epochs):
            raise ValueError("model.g.locality.schedule: epochs must be strictly increasing, e.g. [[0, 4], [22, 6]]")
        if self.schedule and self.off_epoch <= epochs[-1]:
            raise ValueError(
                f"model.g.locality.off_epoch={self.off_epoch} must come after the last schedule epoch {epochs[-1]}"
            )
        if any(w < 1 for _, w in self.schedule):
            raise ValueError("model.g.locality.schedule: widths must be >= 1")
        return self


class GeneratorConfig(_Section):
    arch: Literal["transgan", "conv"] = "transgan"  # conv = SNGAN-style ResNet baseline (Table 1)
    latent_dim: int = Field(256, ge=1)
    bottom: int = Field(8, ge=1)  # side of the first token grid
    embed_dim: int = Field(1024, ge=1)  # width of the first stage; each PixelShuffle divides by 4
    depths: list[int] = [5, 4, 2]  # blocks per stage; stage i has resolution bottom * 2^i
    heads: int = Field(4, ge=1)
    mlp_ratio: float = Field(4.0, gt=0)
    norm: Literal["ln", "pn"] = "ln"  # LayerNorm or PixelNorm
    act: Literal["gelu", "leakyrelu"] = "gelu"
    rel_pos_bias: bool = False  # learned Swin-style relative position bias (v2)
    window_size: int = Field(16, ge=1)  # grid attention window side
    window_min_res: int = Field(64, ge=1)  # stages at this resolution or above attend in windows
    noise_injection: bool = False
    out_act: Literal["none", "tanh"] = "none"  # output activation; none = the official generator
    self_modulation: bool = False  # cross-attention to latent tokens in every block
    modulation_tokens: int = Field(16, ge=1)
    latent_classes: int = Field(0, ge=0)  # K > 0: argmax of z's first K entries picks a learned input offset
    conv_ch: int = Field(256, ge=8)  # width of the conv baseline
    locality: LocalityConfig = LocalityConfig()


class DiscriminatorConfig(_Section):
    arch: Literal["vit", "multiscale", "conv"] = "vit"
    embed_dim: int = Field(384, ge=1)
    depth: int = Field(7, ge=1)  # vit: blocks; multiscale: blocks per scale stage
    patch_size: int = Field(4, ge=1)  # vit: patch side; multiscale: the finer patch (coarse = 2x)
    heads: int = Field(4, ge=1)
    mlp_ratio: float = Field(4.0, gt=0)
    norm: Literal["ln", "pn"] = "ln"
    act: Literal["gelu", "leakyrelu"] = "gelu"
    rel_pos_bias: bool = False
    noise_injection: bool = False
    # K > 0: D(x, y) is conditioned (projection) on a cluster: a real image's nearest of K k-means
    # centroids in pixel space (fitted on the training data at start), a sample's latent cell.
    # Needs model.g.latent_classes = K. See trainers/models/clusters.py.
    pixel_clusters: int = Field(0, ge=0)
    conv_ch: int = Field(128, ge=8)


class MTCTConfig(_Section):
    """Multi-task co-training: G also super-resolves a low-resolution real image (v1 paper)."""

    enabled: bool = False
    weight: float = Field(50.0, ge=0)  # lambda on the MSE reconstruction loss


class ModelConfig(_Section):
    g: GeneratorConfig = GeneratorConfig()
    d: DiscriminatorConfig = DiscriminatorConfig()
    mtct: MTCTConfig = MTCTConfig()


# --------------------------------------------------------------------------------- loss and aug


class LossConfig(_Section):
    kind: Literal["wgan-gp-eps", "wgan-gp", "hinge", "nsgan"] = "wgan-gp-eps"
    gp_weight: float = Field(10.0, ge=0)  # lambda of the gradient penalty (wgan-gp kinds)
    phi: float = Field(1.0, gt=0)  # target gradient norm
    drift: float = Field(1e-3, ge=0)  # epsilon * (mean D(real))^2
    r1_gamma: float = Field(0.0, ge=0)  # R1 penalty gamma/2 * E||grad D(real)||^2 (any kind); 0 = off
    reg_every: int = Field(1, ge=1)  # lazy regularisation: penalties every k-th D update, weighted x k


AugOp = Literal["translation", "cutout", "color", "erase", "stl_erase"]


class AugmentConfig(_Section):
    policy: list[AugOp] = ["translation", "cutout", "color"]  # DiffAugment ops inside D
    translation_ratio: float = Field(0.2, ge=0, le=0.5)
    cutout_ratio: float = Field(0.5, gt=0, le=1)
    gate_prob: float = Field(0.3, ge=0, le=1)  # batch gate of cutout/erase
    erase_min: float = Field(0.2, gt=0, le=1)
    erase_max: float = Field(0.7, gt=0, le=1)


# ------------------------------------------------------------------------------ optimisation


class OptimConfig(_Section):
    lr_g: float = Field(1e-4, gt=0)
    lr_d: float = Field(1e-4, gt=0)
    beta1: float = Field(0.0, ge=0, lt=1)
    beta2: float = Field(0.99, ge=0, lt=1)
    n_critic: int = Field(4, ge=1)  # D steps per G step
    grad_clip: float = Field(5.0, ge=0)  # 0 disables clipping
    batch_d: int = Field(64, ge=1)  # GLOBAL real batch of one D step
    batch_g: int = Field(128, ge=1)  # GLOBAL latent batch of one G step
    accum: int = Field(1, ge=1)  # micro-batches per step on each worker
    ema_kimg: float = Field(500.0, gt=0)  # EMA half-life in thousands of images
    ema_rampup: float | None = Field(0.1, ge=0)  # half-life <= rampup * images seen; None = off
    ema_beta: float | None = Field(None, ge=0, lt=1)  # fixed beta per G step (overrides kimg)
    # The G update's samples (detached) also serve the last D update of the step: one generator
    # pass less per step (a recipe change; the official code draws fresh latents for each).
    share_fakes: bool = False
    # Learning rates: constant, or falling linearly to 0 at train.kimg (both G and D, by G update;
    # the official code's --lr_decay). A resumed run with a larger train.kimg stretches the ramp.
    lr_decay: Literal["none", "linear"] = "none"


class TrainConfig(_Section):
    kimg: float = Field(100.0, gt=0)  # training length: thousands of real images shown to D
    # Intervals count real images shown to D (kimg), as StyleGAN2-ADA's ticks: they mean the same
    # whatever n_critic or the batch is. An event fires at the first step that reaches a multiple.
    log_kimg: float = Field(2.0, gt=0)  # between reports (losses, img/s; one line of progress)
    checkpoint_kimg: float = Field(20.0, gt=0)  # between checkpoints
    keep_last: int = Field(3, ge=1)  # newest checkpoints kept (plus the best)
    grid_kimg: float = Field(20.0, ge=0)  # between fixed-z sample grids; 0 = end only
    eval_kimg: float = Field(0.0, ge=0)  # between evaluations; 0 = end only
    precision: Literal["auto", "bf16", "fp32"] = "auto"  # auto = bf16 where the device supports it
    compile: bool = False  # torch.compile the G and D steps
    activation_checkpointing: bool = False  # recompute block activations in backward: less memory, ~1 more forward
    # Replay the whole step (GP double backward, Adam, EMA) from CUDA graphs: same dynamics, far fewer
    # kernel launches. Off until measured on a card; without a CUDA device, with several workers or with
    # train.compile the step runs eagerly (one warning says why).
    cuda_graphs: bool = False
    nan_retries: int = Field(3, ge=0)  # rollbacks on NaN/Inf before giving up
    deterministic: bool = False  # deterministic kernels (CPU resume tests)


class EvalConfig(_Section):
    metrics: list[str] = ["digits_fid", "digits_is"]
    primary: str = "digits_fid"  # checkpoint score and sweep metric (its direction: metric_registry)
    n_fake: int = Field(50_000, ge=2)
    batch: int = Field(250, ge=1)
    seed: int = 0
    inception_weights: str | None = None  # path to the TF-Inception port weights file
    cache_dir: str | None = None  # reference statistics cache; default ~/.cache/transgan_lab

    @model_validator(mode="after")
    def _check(self) -> EvalConfig:
        known = metric_registry.EVAL_METRICS
        bad = [m for m in self.metrics if m not in known]
        if bad:
            raise ValueError(f"eval.metrics: unknown metric(s) {bad}; choose from {sorted(known)}")
        if self.primary not in self.metrics:
            raise ValueError(
                f"eval.primary={self.primary!r} is not in eval.metrics {self.metrics}; add it or pick one of them"
            )
        return self


class ResourcesConfig(_Section):
    workers: int = Field(1, ge=1)  # Ray Train workers (data-parallel ranks)
    gpus_per_worker: float = Field(0, ge=0)
    cpus_per_worker: float = Field(1, gt=0)

    @model_validator(mode="after")
    def _check(self) -> ResourcesConfig:
        if self.workers > 1 and 0 < self.gpus_per_worker < 1:
            raise ValueError(
                "resources.gpus_per_worker must be a whole number when resources.workers > 1 "
                "(two DDP ranks on one GPU fail in NCCL); use 1 or run one worker"
            )
        return self


class TrackingConfig(_Section):
    uri: str | None = None  # MLflow tracking URI; default sqlite:///<out>/mlflow.db
    experiment: str = "transgan-lab"
    storage_path: str | None = None  # Ray Train/Tune storage; local dir, s3://, gs://


class SweepConfig(_Section):
    space: str = "digits"  # search space name in platform/sweep/spaces.py
    num_samples: int = Field(6, ge=1)
    max_concurrent: int = Field(0, ge=0)  # 0 = derived from the resources
    seed: int = 0
    grace_reports: int = Field(2, ge=1)  # ASHA grace period in reports
    reduction_factor: int = Field(2, ge=2)
    objectives: list[str] = []  # extra objectives for multi-objective mode, e.g. ["g_params"]
    fault_rate: float = Field(0.0, ge=0, le=1)  # injected trial failures (soak tests)
    max_failures: int = Field(1, ge=0)
    # Wall-clock budget of the whole sweep in minutes (Tune's time_budget_s): when it runs out the
    # running trials are stopped where they are and the sweep ends with its table. 0 = none.
    time_budget_min: float = Field(0.0, ge=0)


class ExperimentConfig(_Section):
    name: str = "experiment"  # readable run name prefix
    preset: str = ""  # preset this config came from (informational)
    seed: int = 0
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    loss: LossConfig = LossConfig()
    augment: AugmentConfig = AugmentConfig()
    optim: OptimConfig = OptimConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    resources: ResourcesConfig = ResourcesConfig()
    tracking: TrackingConfig = TrackingConfig()
    sweep: SweepConfig = SweepConfig()

    @model_validator(mode="after")
    def _cross_checks(self) -> ExperimentConfig:
        errors = _validate.config_errors(self) or cross_field_errors(self)  # limits first: one rule, one place
        if errors:
            raise ValueError("; ".join(errors))
        return self


def cross_field_errors(cfg: ExperimentConfig) -> list[str]:
    """Checks that span sections; each message names the field and the fix."""
    err: list[str] = []
    g, d, data, opt, res = cfg.model.g, cfg.model.d, cfg.data, cfg.optim, cfg.resources
    if g.arch == "transgan":
        if not g.depths or any(x < 1 for x in g.depths):
            err.append(f"model.g.depths={g.depths}: give one positive block count per stage, e.g. [5, 2, 2]")
        else:
            n = len(g.depths)
            out = g.bottom * 2 ** (n - 1)
            if out != data.resolution:
                err.append(
                    f"model.g.bottom={g.bottom} with {n} stages makes {out}px images but data.resolution="
                    f"{data.resolution}: image size must equal bottom x 2^(stages-1); set model.g.bottom="
                    f"{data.resolution / 2 ** (n - 1):g} or change model.g.depths"
                )
            if g.embed_dim % 4 ** (n - 1):
                err.append(
                    f"model.g.embed_dim={g.embed_dim} must be divisible by 4^(stages-1)={4 ** (n - 1)} "
                    "(each PixelShuffle divides the width by 4)"
                )
            else:
                for i in range(n):
                    w = g.embed_dim // 4**i
                    if w % g.heads:
                        err.append(
                            f"model.g.embed_dim={g.embed_dim}: stage {i} width {w} is not divisible by "
                            f"model.g.heads={g.heads}; pick heads dividing {w}"
                        )
                        break
    if d.arch in ("vit", "multiscale"):
        if d.embed_dim % d.heads:
            err.append(f"model.d.embed_dim={d.embed_dim} must be divisible by model.d.heads={d.heads}")
        step = d.patch_size * (2 if d.arch == "multiscale" else 1)
        if data.resolution % step:
            err.append(
                f"model.d.patch_size={d.patch_size}: data.resolution={data.resolution} must be divisible by "
                f"{step}; pick a patch size that divides the image"
            )
        if d.arch == "multiscale":
            if d.embed_dim % 4 or (d.embed_dim * 3 // 4) % d.heads:
                err.append(
                    f"model.d.embed_dim={d.embed_dim}: the multiscale D splits it 3/4 + 1/4; use a multiple "
                    f"of 4 whose 3/4 is divisible by model.d.heads={d.heads}"
                )
    if opt.share_fakes and (opt.accum > 1 or opt.batch_g < opt.batch_d):
        err.append(
            f"optim.share_fakes needs optim.accum=1 and optim.batch_g >= optim.batch_d (got accum={opt.accum}, "
            f"batch_g={opt.batch_g}, batch_d={opt.batch_d}); set optim.share_fakes=false or change them"
        )
    for name, batch in (("optim.batch_d", opt.batch_d), ("optim.batch_g", opt.batch_g)):
        if batch % (res.workers * opt.accum):
            err.append(
                f"{name}={batch} is not divisible by resources.workers x optim.accum = "
                f"{res.workers} x {opt.accum}; the global batch is fixed, so pick workers/accum that divide it"
            )
    if data.dataset != "digits" and not data.root and not data.download:
        err.append(
            f"data.root is required for data.dataset={data.dataset!r}: set data.root=/path/to/{data.dataset} "
            "(or data.download=true where the network allows)"
        )
    if data.dataset == "digits" and data.hflip:
        err.append("data.hflip=true on digits: a mirrored digit is not a digit; set data.hflip=false")
    if cfg.augment.erase_min > cfg.augment.erase_max:
        err.append("augment.erase_min must be <= augment.erase_max")
    if cfg.model.mtct.enabled and g.arch != "transgan":
        err.append("model.mtct.enabled needs model.g.arch=transgan (the conv baseline has no SR path)")
    if g.locality.enabled and g.arch != "transgan":
        err.append("model.g.locality.enabled needs model.g.arch=transgan")
    if g.latent_classes > g.latent_dim:
        err.append(
            f"model.g.latent_classes={g.latent_classes} exceeds model.g.latent_dim={g.latent_dim}: the cell is the "
            "argmax of z's first K entries; pick K <= latent_dim"
        )
    k = cfg.model.d.pixel_clusters
    if k and k != g.latent_classes:
        err.append(
            f"model.d.pixel_clusters={k} needs model.g.latent_classes={k} (a sample's cluster is its latent cell); "
            f"got latent_classes={g.latent_classes}: set both to the same K"
        )
    if k and cfg.model.d.arch == "conv":
        err.append(
            "model.d.pixel_clusters needs a transformer D (model.d.arch=vit or multiscale), not conv; "
            "set model.d.pixel_clusters=0 for the conv D"
        )
    standard = metric_registry.eval_metrics(metric_registry.TF_INCEPTION)
    digits = metric_registry.eval_metrics(metric_registry.DIGITS_CLASSIFIER)
    if any(m in standard for m in cfg.eval.metrics) and data.channels != 3:
        err.append(f"eval.metrics {'/'.join(standard)} need RGB images: set data.channels=3 or use {'/'.join(digits)}")
    if any(m in digits for m in cfg.eval.metrics) and data.dataset != "digits":
        err.append(
            f"eval.metrics {'/'.join(digits)} only measure the digits data, not {data.dataset!r}; "
            f"use {'/'.join(standard)}"
        )
    return err
