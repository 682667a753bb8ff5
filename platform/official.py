"""`transgan-lab import-official` and `transgan-lab eval --protocol official`.

import-official: an official TransGAN checkpoint file -> one of our run folders
(``<out>/checkpoints/ckpt-<step>/``) that ``eval``, ``sample`` and ``train --resume`` accept. The
preset names the official counterpart (``trainers.official.COUNTERPARTS``); its config overrides
are applied first, the user's ``--set`` after them. Everything is read and checked before the
output folder is created.

eval --protocol official: our protocol and the official one side by side
(``trainers.metrics.official``).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

from transgan_lab.platform import config as C
from transgan_lab.platform.cli import UserError


def _choose_d(cp, file_d: str | None, asked: str | None, path: str) -> str:
    if asked and file_d and asked != file_d:
        raise UserError(f"--official-d {asked} contradicts the file, which records --dis_model {file_d}")
    name = asked or file_d or cp.D[0]
    if name not in cp.D:
        raise UserError(
            f"{path} holds the official discriminator {name}; this preset corresponds to "
            f"{' or '.join(cp.D)}. Choose the preset whose official counterpart it is"
        )
    return name


def cmd_import_official(args: argparse.Namespace) -> int:
    from transgan_lab.trainers import official as O
    from transgan_lab.trainers import official_import as I

    cp = O.COUNTERPARTS.get(args.preset)
    if cp is None:
        raise UserError(
            f"preset {args.preset!r} has no official TransGAN counterpart; presets with one: "
            f"{', '.join(sorted(O.COUNTERPARTS))} (see README, Official checkpoints)"
        )
    obj = I.read_official_file(args.checkpoint)  # code-free; refuses pickled code with the reason
    file_g, file_d = I.official_names(obj)
    if file_g and file_g != cp.G:
        match = [p for p, c in O.COUNTERPARTS.items() if c.G == file_g]
        raise UserError(
            f"{args.checkpoint} was trained with --gen_model {file_g}; preset {args.preset} corresponds to "
            f"{cp.G}" + (f"; use --preset {match[0]}" if match else "; no preset corresponds to it")
        )
    d_name = _choose_d(cp, file_d, args.official_d, args.checkpoint)
    overrides = list(cp.overrides) + list(cp.d_overrides.get(d_name, ())) + list(args.overrides)
    cfg = C.load_config(args.preset, overrides)
    out = Path(args.out)
    created = not out.exists()
    try:
        path, info = I.import_official(
            obj=obj,
            source=args.checkpoint,
            cfg=cfg,
            preset=args.preset,
            d_name=d_name,
            out_dir=out,
            fresh_optimizers=args.fresh_optimizers,
            generator_only=args.generator_only,
        )
    except BaseException:
        if created:
            shutil.rmtree(out, ignore_errors=True)  # a refused import leaves nothing behind
        raise
    (out / "config.yaml").write_text(C.to_yaml(cfg))
    print(
        f"imported {info['file']} (official {info['gen_model']} + {info['dis_model'] or 'no D'}, "
        f"epoch {info['epoch']}) as preset {args.preset}: {path}"
    )
    print(f"optimizers: {info['optimizers']}")
    if info["dropped_unused"]:
        print(f"dropped (never read by the official forward): {', '.join(info['dropped_unused'])}")
    print(f"evaluate:  transgan-lab eval {out} --protocol official")
    print(
        "resume:    "
        + " ".join(["transgan-lab train", args.preset, *(f"--set {o}" for o in overrides), "--resume", str(out)])
    )
    return 0


# ----------------------------------------------------------------------------------- eval


class OfficialEval:
    """The official protocol, resolved and checked before anything is computed."""

    def __init__(self, args: argparse.Namespace, cfg: Any, manifest: dict, metrics: list[str] | None):
        from transgan_lab.trainers.metrics import official as OM
        from transgan_lab.trainers.metrics.inception import resolve_weights

        preset = (manifest.get("official") or {}).get("preset") or cfg.preset
        self.protocol = OM.protocol_for(preset)
        wanted = metrics if metrics is not None else list(cfg.eval.metrics)
        self.metrics = tuple(m for m in wanted if m in OM.OFFICIAL_METRICS)
        self.skipped = [m for m in wanted if m not in OM.OFFICIAL_METRICS]
        if not self.metrics:
            raise UserError(f"--protocol official computes {', '.join(OM.OFFICIAL_METRICS)}; asked for {wanted}")
        self.stats = Path(args.official_stats) if args.official_stats else OM.default_stats_path(cfg, self.protocol)
        if "fid" in self.metrics:
            OM.load_official_stats(self.stats, self.protocol)  # missing or wrong file: refused before any sampling
        resolve_weights(cfg)
        self.n = args.n

    def run(self, G: Any, cfg: Any, batch: int | None) -> dict:
        from transgan_lab.trainers.metrics.official import evaluate_official

        return evaluate_official(
            G, cfg, protocol=self.protocol, stats_path=self.stats, metrics=self.metrics, n_fake=self.n, batch=batch
        )


def print_side_by_side(ours: dict, official: dict, *, protocol: Any, skipped: list[str]) -> None:
    """Both protocols' values in two columns, then what each protocol is and where they differ."""
    p = protocol
    print(f"{'metric':>8}  {'ours':>10}  {'official':>10}")
    for name in list(ours) + [m for m in official if m not in ours]:
        a = f"{ours[name]['value']:.4f}" if name in ours else "-"
        b = f"{official[name]['value']:.4f}" if name in official else "n/a"
        print(f"{name:>8}  {a:>10}  {b:>10}")
    some = next(iter(ours.values()), None)
    if some:
        q = some["protocol"]
        print(
            f"ours:     n_fake {q.get('n_fake')}, reference {q.get('reference_split', '-')} "
            f"through {q.get('extractor')}, "
            f"{q.get('quantisation')}, FID square root by symmetric eigendecomposition"
        )
    first = next(iter(official.values()))["protocol"]
    print(
        f"official: {p.name}; n_fake {first['n_fake']}; reference {first.get('stats_file', p.stats_file)} "
        f"({p.stats_source}); quantisation {p.quantisation}; FID square root {p.fid_sqrt}"
    )
    for d in first["deviations"]:
        print(f"  here:   {d}")
    if skipped:
        print(f"  not in the official protocol: {', '.join(skipped)}")


def eval_json(ours: dict, official: dict | None) -> dict:
    out: dict = {"metrics": ours}
    if official is not None:
        out["official"] = official
    return json.loads(json.dumps(out, default=float))
