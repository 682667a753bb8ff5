"""The paper's studies, run for real: every (variant, seed) of a study is one Ray Tune trial that
runs one Ray Train run, tracked in MLflow with ``transgan.study`` / ``variant`` / ``seed`` tags.

    run_study("table1", dataset="digits", seeds=3)          `transgan-lab study table1 --dataset digits`

- A study is a list of variants (row label + overrides of a preset) per dataset: ``cifar10`` at the
  paper's scale (a GPU cluster), ``digits`` scaled down so a table runs on a 2-core CPU, ``smoke``
  (seconds, for tests). The budget (``train.kimg`` ...) is overrides like any other: bigger budgets
  are a flag (``--kimg``, ``--set``), not a code change.
- Every config is validated before Ray starts. The study's id hashes all of its configs, so
  re-running the same command resumes it (finished runs are kept, unfinished ones continue from
  their checkpoint) and a changed budget is a new study, never mixed into the old one.
- Trials run side by side (``max_concurrent``; default: as many as the cluster's CPUs / GPUs fit),
  in a fixed order, none stopped early: a study compares finished runs.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from transgan_lab.platform import tracking
from transgan_lab.platform.config import ConfigError, ExperimentConfig, load_config
from transgan_lab.tracking_client import slug

Variant = tuple[str, list[str]]  # (row label, overrides of the study's preset)


@dataclass(frozen=True)
class StudyDef:
    title: str  # what the study asks
    preset: dict[str, str]  # dataset -> preset name
    variants: dict[str, list[Variant]]  # dataset -> its variants, in table order


# ---- the four studies ------------------------------------------------------------------------

_CONV = ["model.g.arch=conv", "model.d.arch=conv", "model.mtct.enabled=false", "model.g.locality.enabled=false"]
_CONV_G = ["model.g.arch=conv", "model.mtct.enabled=false", "model.g.locality.enabled=false"]
# digits: conv baselines of about the transformer's compute per image (G 0.013 vs 0.018 GFLOPs,
# D 0.009 vs 0.004; 0.07 M params each against the transformer's G 0.55 M and D 0.10 M)
_DCONV_G = ["model.g.arch=conv", "model.g.conv_ch=32"]
_DCONV_D = ["model.d.arch=conv", "model.d.conv_ch=32"]
# digits runs ~13 epochs of the 1,797 images: the locality mask widens and goes away within them
_DLOCAL = ["model.g.locality.enabled=true", "model.g.locality.schedule=[[0,4],[3,6],[5,8],[7,10]]"]
_DLOCAL += ["model.g.locality.off_epoch=10"]
_TINY_LOCAL = ["model.g.locality.enabled=true", "model.g.locality.schedule=[[0,2],[1,3]]"]
_TINY_LOCAL += ["model.g.locality.off_epoch=2"]

# What a digits study trial trains: the digits-tiny recipe at batch 16 for 20 kimg (625 G
# updates at n_critic 2), evaluated every 5 kimg on 1,000 samples, one CPU per trial: 45 runs
# (4 tables x 3 seeds) fit in about an hour and a half of this 2-core machine, two at a time.
# Without the preset's latent cells, which pay off only after ~150 kimg.
DIGITS_BUDGET = [
    "model.g.latent_classes=0",
    "model.d.pixel_clusters=0",
    "optim.batch_d=16",
    "optim.batch_g=16",
    "train.kimg=20",
    "train.log_kimg=1",
    "train.eval_kimg=5",
    "train.checkpoint_kimg=5",
    "train.grid_kimg=20",
    "train.keep_last=1",
    "eval.n_fake=1000",
    "resources.workers=1",
    "resources.cpus_per_worker=0.9",
]

STUDIES: dict[str, StudyDef] = {
    "table1": StudyDef(
        "Table 1: which generator / discriminator pairs train (transformer vs conv G and D)",
        {"cifar10": "cifar10-s", "digits": "digits-tiny", "smoke": "digits-tiny"},
        {
            "cifar10": [
                ("conv G / conv D", _CONV),
                ("transformer G / conv D", ["model.d.arch=conv"]),
                ("conv G / transformer D", _CONV_G),
                ("transformer G / transformer D", []),
            ],
            "digits": [
                ("conv G / conv D", _DCONV_G + _DCONV_D),
                ("transformer G / conv D", _DCONV_D),
                ("conv G / transformer D", _DCONV_G),
                ("transformer G / transformer D", []),
            ],
            "smoke": [
                ("transformer G / transformer D", []),
                ("transformer G / conv D", ["model.d.arch=conv", "model.d.conv_ch=16", "model.d.pixel_clusters=0"]),
            ],
        },
    ),
    "table2": StudyDef(
        "Table 2: does differentiable augmentation help a transformer GAN more than a conv GAN",
        {"cifar10": "cifar10-s", "digits": "digits-tiny", "smoke": "digits-tiny"},
        {
            "cifar10": [
                ("conv GAN, no augmentation", _CONV + ["augment.policy=[]"]),
                ("conv GAN + DiffAugment", _CONV),
                ("TransGAN, no augmentation", ["augment.policy=[]"]),
                ("TransGAN + DiffAugment", []),
            ],
            "digits": [  # the digits recipe's DiffAugment policy is translation (cutout slows it)
                ("conv GAN, no augmentation", _DCONV_G + _DCONV_D + ["augment.policy=[]"]),
                ("conv GAN + DiffAugment", _DCONV_G + _DCONV_D),
                ("TransGAN, no augmentation", ["augment.policy=[]"]),
                ("TransGAN + DiffAugment", []),
            ],
            "smoke": [("TransGAN, no augmentation", ["augment.policy=[]"]), ("TransGAN + DiffAugment", [])],
        },
    ),
    "table3": StudyDef(
        "Table 3: multi-task co-training (super-resolution) and locality-aware initialisation, ablated",
        {"cifar10": "cifar10-s", "digits": "digits-tiny", "smoke": "digits-tiny"},
        {
            "cifar10": [
                ("TransGAN (DiffAugment only)", ["model.mtct.enabled=false", "model.g.locality.enabled=false"]),
                ("+ MT-CT", ["model.mtct.enabled=true", "model.g.locality.enabled=false"]),
                ("+ MT-CT + locality init", ["model.mtct.enabled=true", "model.g.locality.enabled=true"]),
            ],
            "digits": [
                ("TransGAN (DiffAugment only)", []),
                ("+ MT-CT", ["model.mtct.enabled=true"]),
                ("+ MT-CT + locality init", ["model.mtct.enabled=true"] + _DLOCAL),
            ],
            "smoke": [
                ("TransGAN (DiffAugment only)", []),
                ("+ MT-CT + locality init", ["model.mtct.enabled=true"] + _TINY_LOCAL),
            ],
        },
    ),
    "table4": StudyDef(
        "Table 4: scaling the generator, TransGAN-S / M / L / XL (width and depth)",
        {"cifar10": "cifar10-s", "digits": "digits-tiny", "smoke": "digits-tiny"},
        {
            "cifar10": [(f"TransGAN-{s.upper()}", [f"preset=cifar10-{s}"]) for s in ("s", "m", "l", "xl")],
            # the paper's widths 384/512/768/1024 (3:4:6:8) and depths {5,2,2} (XL {5,4,2}), at digits size
            "digits": [
                ("TransGAN-S", ["model.g.embed_dim=48", "model.g.depths=[2,1,1]"]),
                ("TransGAN-M", ["model.g.embed_dim=64", "model.g.depths=[2,1,1]"]),
                ("TransGAN-L", ["model.g.embed_dim=96", "model.g.depths=[2,1,1]"]),
                ("TransGAN-XL", ["model.g.embed_dim=128", "model.g.depths=[2,2,1]"]),
            ],
            "smoke": [
                ("TransGAN-S", ["model.g.embed_dim=32", "model.g.depths=[1,1,1]"]),
                ("TransGAN-M", ["model.g.embed_dim=64", "model.g.depths=[1,1,1]"]),
            ],
        },
    ),
}
BUDGETS = {"digits": DIGITS_BUDGET}  # smoke runs get experiments.SMOKE, cifar10 its preset's own


@dataclass
class StudyRun:
    variant: str  # row label
    seed: int
    slug: str  # <variant>-s<seed>: the run's name inside the study
    config: ExperimentConfig


def plan(
    study: str,
    *,
    dataset: str = "digits",  # cifar10 | digits | smoke
    seeds: int = 3,  # runs per variant, seeds 0..seeds-1
    overrides: list[str] | None = None,  # applied to every run after the study's budget
    only: list[str] | None = None,  # variant labels to keep
) -> list[StudyRun]:
    """Every run of the study as a validated config (raises ConfigError naming the variant)."""
    from transgan_lab.platform.experiments import SMOKE

    if study not in STUDIES:
        raise ConfigError(f"unknown study {study!r}; choose one of {', '.join(STUDIES)}")
    sdef = STUDIES[study]
    if dataset not in sdef.variants:
        raise ConfigError(f"study {study} has no {dataset!r} variants; choose --dataset {' | '.join(sdef.variants)}")
    if not isinstance(seeds, int) or not 1 <= seeds <= 100:
        raise ConfigError(f"--seeds {seeds!r}: give a whole number of runs per variant from 1 to 100, e.g. --seeds 3")
    variants = sdef.variants[dataset]
    if only:
        unknown = [o for o in only if o not in {v for v, _ in variants}]
        if unknown:
            raise ConfigError(f"--only {unknown} names no variant of {study}; choose from {[v for v, _ in variants]}")
        variants = [v for v in variants if v[0] in only]
    budget = SMOKE if dataset == "smoke" else BUDGETS.get(dataset, [])
    runs = []
    for label, extra in variants:
        preset = next((e.split("=", 1)[1] for e in extra if e.startswith("preset=")), sdef.preset[dataset])
        extra = [e for e in extra if not e.startswith("preset=")]
        for seed in range(seeds):
            sets = budget + extra + (overrides or []) + [f"name={study}-{slug(label)}", f"seed={seed}"]
            try:
                cfg = load_config(preset, sets)
            except ConfigError as e:
                raise ConfigError(f"{study} variant {label!r}: {e}") from None
            runs.append(StudyRun(label, seed, f"{slug(label)}-s{seed}", cfg))
    return runs


def study_id(study: str, dataset: str, runs: list[StudyRun]) -> str:
    """``<study>-<dataset>-<hash of every run's config>``: the same command resumes the same study."""
    from transgan_lab.platform.config import config_hash

    h = hashlib.sha256(json.dumps([[r.slug, config_hash(r.config)] for r in runs]).encode()).hexdigest()
    return f"{study}-{dataset}-{h[:8]}"


def run_study(
    study: str,
    runs: list[StudyRun],
    *,
    dataset: str,  # the key of the variants the runs came from (part of the study id)
    out_root: str | os.PathLike = "runs",  # Ray storage, run folders, default MLflow store
    address: str | None = None,  # Ray address; default: a local runtime
    tracking_uri: str | None = None,  # overrides tracking.uri
    max_concurrent: int | None = None,  # trials at once (default: what the cluster fits)
    progress: bool = True,  # one line per trial event
):
    """Run (or resume) every run of the study; returns the sweep layer's SweepResult (one row per run)."""
    import math

    import ray
    from ray import tune
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    from transgan_lab.platform.ray_train import init_ray, storage_path_for
    from transgan_lab.platform.sweep import results
    from transgan_lab.platform.sweep.callbacks import PlacementGroupReaper, Progress
    from transgan_lab.platform.sweep.driver import (
        DRIVER_CPU,
        STUDY_RUN,
        concurrency,
        open_parent_run,
        trial_driver,
    )

    first = runs[0].config
    name = study_id(study, dataset, runs)
    primary = first.eval.primary
    storage = storage_path_for(first, out_root)
    commit = tracking.git_commit()
    uri, experiment_id, parent = open_parent_run(
        first,
        name=name,
        out_root=out_root,
        tracking_uri=tracking_uri,
        num_samples=len(runs),
        commit=commit,
        extra={"study": study},
    )
    parent_run_id = parent.run_id
    plan_rows = [{"run": i, "variant": r.variant, "seed": r.seed, "slug": r.slug} for i, r in enumerate(runs)]
    parent.client.log_dict(parent_run_id, plan_rows, "study_plan.json")

    init_ray(address)
    k = max_concurrent or concurrency(first, ray.cluster_resources(), len(runs))
    ctx = {
        "sweep": name,
        "out_dir": str(Path(out_root).resolve() / "sweeps" / name),
        "train_storage": f"{storage}/{name}-trials",
        "objectives": [],
        "study": study,
        "runs": [{"config": r.config.model_dump(mode="json"), "variant": r.variant, "slug": r.slug} for r in runs],
        "tracking": {"uri": uri, "experiment_id": experiment_id, "parent_run_id": parent_run_id, "git_commit": commit},
    }
    trainable = tune.with_resources(tune.with_parameters(trial_driver, ctx=ctx), {"cpu": DRIVER_CPU})
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "2")
    exp_path = f"{storage}/{name}"
    restored = tune.Tuner.can_restore(exp_path)
    if restored:
        if progress:
            print(f"[study] resuming {name} from {exp_path}", flush=True)
        tuner = tune.Tuner.restore(exp_path, trainable=trainable, resume_unfinished=True, resume_errored=True)
    else:
        callbacks = [CSVLoggerCallback(), JsonLoggerCallback(), PlacementGroupReaper()]
        if progress:
            slugs = [r.slug for r in runs]
            callbacks.append(Progress(primary, len(runs), label=lambda c, t: slugs[c[STUDY_RUN]], tag="study"))
        tuner = tune.Tuner(
            trainable,
            # every run once, in plan order; no scheduler: a study compares finished runs
            param_space={STUDY_RUN: tune.grid_search(list(range(len(runs))))},
            tune_config=tune.TuneConfig(num_samples=1, max_concurrent_trials=k),
            run_config=tune.RunConfig(
                name=name,
                storage_path=storage,
                verbose=0,
                callbacks=callbacks,
                failure_config=tune.FailureConfig(max_failures=first.sweep.max_failures),
            ),
        )
        if progress:
            print(f"[study] {name}: {len(runs)} runs, {k} at a time", flush=True)
    grid = tuner.fit()
    df = results.trials_table(grid, primary, [])
    if STUDY_RUN in df:  # label each row by its run instead of the Tune trial id
        df["trial"] = df[STUDY_RUN].map(lambda i: runs[int(i)].slug if not math.isnan(float(i)) else "")
    outcomes = results.finalize_trial_runs(uri, experiment_id, name, df)
    df.insert(3, "outcome", df["trial_id"].map(lambda t: outcomes.get(t, "")))
    parent.client.log_text(parent_run_id, df.to_csv(index=False), "results.csv")
    n_err = int((df["status"] == "ERROR").sum()) if len(df) else 0
    parent.set_tags({"n_trials": len(df), "n_errors": n_err})
    parent.finish("FAILED" if n_err else "FINISHED")
    return results.SweepResult(
        name=name,
        path=exp_path,
        tracking_uri=uri,
        parent_run_id=parent_run_id,
        table=df,
        best=None,
        restored=restored,
        errors=[r for r in df["trial"][df["status"] == "ERROR"]] if len(df) else [],
        runs_dir=ctx["out_dir"],
    )


def cmd_study(args) -> int:
    """`transgan-lab study STUDY`: plan and validate, run or resume, print the table, publish."""
    overrides = list(args.overrides) + ([f"train.kimg={args.kimg}"] if args.kimg else [])
    runs = plan(args.study, dataset=args.dataset, seeds=args.seeds, overrides=overrides, only=args.only)
    name = study_id(args.study, args.dataset, runs)
    for r in runs:
        c = r.config
        print(f"[study] {r.slug:<40} {c.preset}  {c.train.kimg:g} kimg")
    print(f"[study] {name}: {len(runs)} runs")
    if args.dry_run:
        return 0
    from transgan_lab.platform.experiments import ray_address

    args.smoke = args.dataset == "smoke"
    result = run_study(
        args.study,
        runs,
        dataset=args.dataset,
        out_root=args.out,
        address=ray_address(args),
        tracking_uri=args.tracking_uri,
        max_concurrent=args.max_concurrent or None,
    )
    df = result.table
    print(df[["trial", "status", "outcome", runs[0].config.eval.primary]].to_string(index=False))
    from transgan_lab.analysis import load
    from transgan_lab.analysis.tables import render, study_tables

    frame = load.load_runs(tracking_uri=result.tracking_uri, sweep_id=name)
    print(render(study_tables(frame, study=args.study), "terminal"))
    if args.publish:
        from transgan_lab.analysis.publish import publish_study

        out = publish_study(frame, study=args.study, out_dir=Path(args.publish), tracking_uri=result.tracking_uri)
        print(f"published: {out}")
    return 1 if result.errors else 0
