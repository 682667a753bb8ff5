"""Runs with known values, logged into a real MLflow store exactly as DEVELOPERS.md "Tracking" says.

Shared by tests/test_analysis.py and tests/test_report_browser.py (not a test module itself).
Run kinds `train|sweep|trial`, tags `transgan.*`, params = the flattened resolved config (dotted
keys, lists as JSON text), metrics with step = nimg, `transgan.protocol.<metric>` = protocol JSON,
artifacts `config.yaml`, `protocols/<metric>.json` and sample grids via `log_image(key="samples")`.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import numpy as np

from transgan_lab.platform import config as C

T0_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z: fixed start times keep the goldens stable


def protocol(metric: str, *, n_fake: int = 2000) -> dict:
    """A digits metric protocol in the shape trainers.metrics records (all fields that change a score)."""
    return {
        "metric": metric,
        "extractor": "digits-cnn",
        "weights_sha256": "5f1c0ffee0ddba11",
        "n_fake": n_fake,
        "n_real": 1797,
        "reference": "digits-all-1797",
        "resize": "bilinear-16",
        "seed": 0,
    }


def cifar_protocol(metric: str) -> dict:
    return {
        "metric": metric,
        "extractor": "inception-v3-compat",
        "weights_sha256": "6726825d0af5f729",
        "n_fake": 50000,
        "reference": "cifar10-train-50000",
        "resize": "tf-bilinear-299",
        "quantize": "uint8",
        "seed": 0,
    }


def flat_params(preset: str, overrides: list[str]) -> dict[str, str]:
    """The real resolved config, flattened with dotted keys; lists as JSON text, scalars as text."""
    cfg = C.load_config(preset, overrides)
    flat = C.flatten(cfg.model_dump(mode="json"))
    return {k: (json.dumps(v) if isinstance(v, (list, dict)) else str(v)) for k, v in flat.items()}


def grid_png(seed: int, size: int = 64) -> np.ndarray:
    """A deterministic 'sample grid' image (uint8 HxWx3) with visible structure."""
    rng = np.random.default_rng(seed)
    tiles = (rng.random((4, 4)) * 255).astype(np.uint8)
    img = np.kron(tiles, np.ones((size // 4, size // 4), dtype=np.uint8))
    return np.stack([img, 255 - img, np.roll(img, size // 8, axis=1)], axis=-1)


class Logger:
    """Creates runs with explicit, increasing start times so every output is deterministic."""

    def __init__(self, client, experiment: str):
        from mlflow.tracking import MlflowClient

        self.client: MlflowClient = client
        exp = client.get_experiment_by_name(experiment)
        self.exp_id = exp.experiment_id if exp else client.create_experiment(experiment)
        self.t = T0_MS
        self.ids: dict[str, str] = {}

    def run(
        self,
        name: str,
        *,
        tags: dict[str, str],
        params: dict[str, str] | None = None,
        metrics: dict[str, list[tuple[int, float]]] | None = None,
        protocols: dict[str, dict] | None = None,
        status: str = "FINISHED",
        parent: str | None = None,
        images: list[tuple[int, np.ndarray]] = (),
        duration_s: int = 600,
        artifacts: bool = True,  # config.yaml and protocols/<metric>.json (the study tables do not read them)
    ) -> str:
        from mlflow.entities import Metric, Param

        all_tags = {f"transgan.{k}": str(v) for k, v in tags.items()}
        for m, p in (protocols or {}).items():
            all_tags[f"transgan.protocol.{m}"] = json.dumps(p)
        if parent:
            all_tags["mlflow.parentRunId"] = self.ids[parent]
        self.t += 60_000
        run = self.client.create_run(self.exp_id, start_time=self.t, tags=all_tags, run_name=name)
        rid = run.info.run_id
        ms = [
            Metric(k, float(v), self.t + i, int(s))
            for k, hist in (metrics or {}).items()
            for i, (s, v) in enumerate(hist)
        ]
        ps = [Param(k, v) for k, v in (params or {}).items()]
        for i in range(0, max(len(ms), len(ps), 1), 500):  # log_batch limits: 1000 metrics, 100 params
            self.client.log_batch(rid, metrics=ms[i : i + 500], params=[], tags=[])
        for i in range(0, len(ps), 100):
            self.client.log_batch(rid, metrics=[], params=ps[i : i + 100], tags=[])
        for m, p in (protocols or {}).items() if artifacts else ():
            self.client.log_dict(rid, p, f"protocols/{m}.json")
        if params and artifacts:
            self.client.log_text(rid, "\n".join(f"{k}: {v}" for k, v in params.items()) + "\n", "config.yaml")
        for step, img in images:
            self.client.log_image(rid, img, key="samples", step=step)
        self.client.set_terminated(rid, status=status, end_time=self.t + duration_s * 1000)
        self.ids[name] = rid
        return rid


def curve(values: list[float], *, every_nimg: int = 2560) -> list[tuple[int, float]]:
    """Evaluation history: value i at nimg = (i + 1) * every_nimg."""
    return [((i + 1) * every_nimg, v) for i, v in enumerate(values)]


def train_metrics(
    fid: list[float],
    is_: list[float],
    *,
    g_params: float = 1_234_567,
    g_flops: float = 2.5e7,
    img_per_s: list[float] = (900.0, 1000.0, 1100.0),
    prefix: str = "digits_",
) -> dict[str, list]:
    steps = [(i + 1) * 2560 for i in range(len(fid))]
    return {
        f"{prefix}fid": curve(fid),
        f"{prefix}is": curve(is_),
        "kimg": [(s, s / 1000) for s in steps],
        "nimg": [(s, float(s)) for s in steps],
        "loss_d": [(s, -1.0 + 0.1 * i) for i, s in enumerate(steps)],
        "loss_g": [(s, 0.5 - 0.05 * i) for i, s in enumerate(steps)],
        "img_per_s": [(s, v) for s, v in zip(steps, img_per_s)],
        "g_params": [(0, g_params)],
        "d_params": [(0, 345_678.0)],
        "g_flops": [(0, g_flops)],
        "d_flops": [(0, 1.0e7)],
    }


# --------------------------------------------------------------------------------- studies

# table1: (variant, G arch, D arch, [(seed, fid history, is history)]); final = last value
TABLE1 = [
    (
        "Transformer G + Transformer D",
        "transgan",
        "vit",
        [
            (0, [30.0, 14.0, 12.0], [1.5, 2.0, 2.10]),
            (1, [31.0, 12.5, 13.0], [1.4, 2.3, 2.20]),
            (2, [29.0, 15.0, 14.5], [1.6, 1.9, 2.05]),
        ],
    ),
    (
        "Transformer G + Conv D",
        "transgan",
        "conv",
        [(0, [35.0, 25.0, 20.0], [1.2, 1.7, 1.90]), (1, [36.0, 24.0, 22.0], [1.3, 1.6, 1.80])],
    ),
    (
        "Conv G + Conv D",
        "conv",
        "conv",
        [
            (0, [28.0, 16.0, 15.0], [1.8, 2.0, 2.00]),
            (1, [27.0, 17.0, 15.5], [1.7, 2.1, 2.40]),
            (2, [26.0, 18.0, 16.0], [1.9, 2.2, 2.30]),
        ],
    ),
]
# table4: (variant, embed_dim, depths, g_params, g_flops, img_per_s history, [(seed, fid, is)])
TABLE4 = [
    (
        "S",
        128,
        [2, 1, 1],
        1_000_000.0,
        2.0e7,
        [1900.0, 2000.0, 2100.0],
        [(0, [40.0, 25.0, 22.0], [1.5, 1.8, 1.9]), (1, [41.0, 26.0, 24.0], [1.4, 1.7, 1.8])],
    ),
    (
        "M",
        192,
        [2, 1, 1],
        2_250_000.0,
        4.5e7,
        [1400.0, 1500.0, 1600.0],
        [(0, [38.0, 21.0, 19.0], [1.6, 1.9, 2.0]), (1, [39.0, 22.0, 20.0], [1.5, 1.9, 2.1])],
    ),
    (
        "XL",
        256,
        [2, 2, 1],
        4_100_000.0,
        8.2e7,
        [700.0, 800.0, 900.0],
        [(0, [36.0, 18.0, 17.0], [1.7, 2.1, 2.2]), (1, [35.0, 17.5, 16.0], [1.8, 2.2, 2.3])],
    ),
]


def log_studies(client, experiment: str) -> Logger:
    lg = Logger(client, experiment)
    lg.run = functools.partial(lg.run, artifacts=False)  # type: ignore[method-assign]
    common = ["train.kimg=7.68", "model.d.pixel_clusters=0"]  # as the studies' digits budget (conv D rows too)
    for variant, g_arch, d_arch, seeds in TABLE1:
        for seed, fid, is_ in seeds:
            params = flat_params(
                "digits-tiny", common + [f"model.g.arch={g_arch}", f"model.d.arch={d_arch}", f"seed={seed}"]
            )
            lg.run(
                f"t1-{g_arch}-{d_arch}-s{seed}",
                tags={
                    "kind": "train",
                    "preset": "digits-tiny",
                    "dataset": "digits",
                    "study": "table1",
                    "variant": variant,
                    "seed": seed,
                },
                params=params,
                metrics=train_metrics(fid, is_),
                protocols={"digits_fid": protocol("digits_fid"), "digits_is": protocol("digits_is")},
            )
    # a failed seed never counts
    lg.run(
        "t1-transgan-vit-s3",
        tags={
            "kind": "train",
            "dataset": "digits",
            "study": "table1",
            "variant": "Transformer G + Transformer D",
            "seed": 3,
        },
        params=flat_params("digits-tiny", common + ["seed=3"]),
        metrics=train_metrics([33.0], [1.0]),
        protocols={"digits_fid": protocol("digits_fid"), "digits_is": protocol("digits_is")},
        status="FAILED",
    )
    # table2: one run scored under another protocol (500 fakes instead of 2000)
    for variant, policy, seeds in [
        ("no augmentation", "[]", [(0, 30.0, 1.5, 2000), (1, 31.0, 1.6, 2000)]),
        (
            "translation + cutout",
            "[translation, cutout]",
            [(0, 20.0, 1.9, 2000), (1, 21.0, 2.0, 2000), (2, 18.0, 2.1, 500)],
        ),
    ]:
        for seed, fid, is_, n_fake in seeds:
            params = flat_params(
                "digits-tiny", common + [f"augment.policy={policy}", f"seed={seed}", f"eval.n_fake={n_fake}"]
            )
            lg.run(
                f"t2-{len(policy)}-s{seed}-n{n_fake}",
                tags={"kind": "train", "dataset": "digits", "study": "table2", "variant": variant, "seed": seed},
                params=params,
                metrics=train_metrics([fid + 10, fid], [is_ - 0.3, is_]),
                protocols={
                    "digits_fid": protocol("digits_fid", n_fake=n_fake),
                    "digits_is": protocol("digits_is", n_fake=n_fake),
                },
            )
    for variant, emb, depths, gp, gf, ips, seeds in TABLE4:
        for seed, fid, is_ in seeds:
            params = flat_params(
                "digits-tiny",
                common + [f"model.g.embed_dim={emb}", f"model.g.depths={json.dumps(depths)}", f"seed={seed}"],
            )
            lg.run(
                f"t4-{variant}-s{seed}",
                tags={"kind": "train", "dataset": "digits", "study": "table4", "variant": variant, "seed": seed},
                params=params,
                metrics=train_metrics(fid, is_, g_params=gp, g_flops=gf, img_per_s=ips),
                protocols={"digits_fid": protocol("digits_fid"), "digits_is": protocol("digits_is")},
            )
    # table3: MT-CT and locality-aware initialisation
    for variant, flags, seeds in [
        ("baseline", [], [(0, 24.0, 1.8), (1, 25.0, 1.7)]),
        ("+ MT-CT", ["model.mtct.enabled=true"], [(0, 23.0, 1.9), (1, 23.5, 1.9)]),
        (
            "+ MT-CT + locality init",
            ["model.mtct.enabled=true", "model.g.locality.enabled=true"],
            [(0, 22.0, 2.0), (1, 22.6, 2.1)],
        ),
    ]:
        for seed, fid, is_ in seeds:
            params = flat_params("digits-tiny", common + flags + [f"seed={seed}"])
            lg.run(
                f"t3-{len(flags)}-s{seed}",
                tags={"kind": "train", "dataset": "digits", "study": "table3", "variant": variant, "seed": seed},
                params=params,
                metrics=train_metrics([fid + 5, fid], [is_ - 0.2, is_]),
                protocols={"digits_fid": protocol("digits_fid"), "digits_is": protocol("digits_is")},
            )
    # CelebA 64x64 (FID only), against the published CelebA rows
    params = flat_params("celeba64-xl", ["train.kimg=100", "seed=0"])
    lg.run(
        "celeba-xl-s0",
        tags={"kind": "train", "dataset": "celeba", "study": "celeba", "variant": "TransGAN-XL (ours)", "seed": 0},
        params=params,
        metrics={"fid": curve([40.0, 31.5]), "kimg": [(2560, 2.56), (5120, 5.12)]},
        protocols={"fid": cifar_protocol("fid") | {"reference": "celeba-64-train"}},
    )
    # sota on CIFAR-10 (standard FID/IS with a TF-Inception protocol): ours against the published rows
    for variant, seeds in [("TransGAN-S (ours)", [(0, [30.0, 21.0], [7.0, 7.9]), (1, [29.0, 20.5], [7.2, 8.1])])]:
        for seed, fid, is_ in seeds:
            params = flat_params("cifar10-s", ["train.kimg=100", f"seed={seed}"])
            lg.run(
                f"sota-s-s{seed}",
                tags={"kind": "train", "dataset": "cifar10", "study": "sota", "variant": variant, "seed": seed},
                params=params,
                metrics=train_metrics(fid, is_, prefix=""),
                protocols={"fid": cifar_protocol("fid"), "is": cifar_protocol("is")},
            )
    return lg


# ----------------------------------------------------------------------------------- sweeps

# (trial, lr_g, embed_dim, g_params, fid history, is history, status)
SWEEP_TRIALS = [
    ("t000", 2e-4, 256, 4_100_000.0, [30.0, 20.0, 16.0], [1.6, 2.0, 2.2], "FINISHED"),
    ("t001", 1e-4, 128, 1_000_000.0, [32.0, 24.0, 21.0], [1.5, 1.8, 1.9], "FINISHED"),
    ("t002", 4e-4, 256, 4_100_000.0, [29.0, 18.0, 15.5], [1.7, 2.1, 2.25], "FINISHED"),
    ("t003", 4e-4, 128, 1_000_000.0, [31.0, 19.0, 18.0], [1.6, 2.0, 2.05], "FINISHED"),
    ("t004", 1e-4, 192, 2_250_000.0, [33.0, 26.0], [1.4, 1.7], "FINISHED"),  # stopped early by ASHA
    ("t005", 2e-4, 192, 2_250_000.0, [], [], "FAILED"),
]


def log_sweep(client, experiment: str, sweep_id: str, *, images: bool = True) -> Logger:
    """A parent run of kind sweep and one nested child per trial, as the platform logs a Tune sweep."""
    lg = Logger(client, experiment)
    base = ["train.kimg=7.68", "sweep.num_samples=6", 'sweep.objectives=["g_params"]']
    lg.run(
        sweep_id,
        tags={"kind": "sweep", "preset": "digits-tiny", "dataset": "digits", "sweep_id": sweep_id},
        params=flat_params("digits-tiny", base),
        duration_s=3600,
    )
    for k, (trial, lr, emb, gp, fid, is_, status) in enumerate(SWEEP_TRIALS):
        params = flat_params(
            "digits-tiny", base + [f"optim.lr_g={lr}", f"model.g.embed_dim={emb}", f"name={sweep_id}-{trial}"]
        )
        metrics = train_metrics(fid, is_, g_params=gp) if fid else {"g_params": [(0, gp)]}
        imgs = [(2560 * (i + 1), grid_png(10 * k + i)) for i in range(len(fid))] if images and fid else []
        lg.run(
            f"{sweep_id}-{trial}",
            tags={
                "kind": "trial",
                "dataset": "digits",
                "sweep_id": sweep_id,
                "trial_id": trial,
                "seed": 0,
                "preset": "digits-tiny",
            },
            params=params,
            metrics=metrics,
            parent=sweep_id,
            status=status,
            images=imgs,
            protocols={"digits_fid": protocol("digits_fid"), "digits_is": protocol("digits_is")} if fid else None,
        )
    return lg


def expected_mean_std(values: list[float]) -> tuple[float, float]:
    a = np.asarray(values, dtype=float)
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else float("nan")


def param_value(v: Any) -> str:
    return json.dumps(v) if isinstance(v, (list, dict)) else str(v)
