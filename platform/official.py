"""`transgan-lab import-official`.

import-official: an official TransGAN checkpoint file -> one of our run folders
(``<out>/checkpoints/ckpt-<step>/``) that ``eval``, ``sample`` and ``train --resume`` accept. The
preset names the official counterpart (``trainers.official.COUNTERPARTS``); its config overrides
are applied first, the user's ``--set`` after them. Everything is read and checked before the
output folder is created.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from transgan_lab.platform import config as C
from transgan_lab.platform.cli import UserError


def _choose_d(cp, file_d: str | None, asked: str | None, path: str) -> str:
    if asked and file_d and asked != file_d:
        raise UserError(f"--official-d {asked} contradicts the file, which records --dis_model {file_d}")
    name = asked or file_d or cp.D[0]
    if name not in cp.D:
        raise UserError(f"{path} holds the official discriminator {name}; this preset corresponds to "
                        f"{' or '.join(cp.D)}. Choose the preset whose official counterpart it is")
    return name


def cmd_import_official(args: argparse.Namespace) -> int:
    from transgan_lab.trainers import official as O
    from transgan_lab.trainers import official_import as I

    cp = O.COUNTERPARTS.get(args.preset)
    if cp is None:
        raise UserError(f"preset {args.preset!r} has no official TransGAN counterpart; presets with one: "
                        f"{', '.join(sorted(O.COUNTERPARTS))} (see README, Official checkpoints)")
    obj = I.read_official_file(args.checkpoint)  # code-free; refuses pickled code with the reason
    file_g, file_d = I.official_names(obj)
    if file_g and file_g != cp.G:
        match = [p for p, c in O.COUNTERPARTS.items() if c.G == file_g]
        raise UserError(f"{args.checkpoint} was trained with --gen_model {file_g}; preset {args.preset} corresponds to "
                        f"{cp.G}" + (f"; use --preset {match[0]}" if match else "; no preset corresponds to it"))
    d_name = _choose_d(cp, file_d, args.official_d, args.checkpoint)
    overrides = list(cp.overrides) + list(cp.d_overrides.get(d_name, ())) + list(args.overrides)
    cfg = C.load_config(args.preset, overrides)
    out = Path(args.out)
    created = not out.exists()
    try:
        path, info = I.import_official(obj=obj, source=args.checkpoint, cfg=cfg, preset=args.preset, d_name=d_name,
                                       out_dir=out, fresh_optimizers=args.fresh_optimizers,
                                       generator_only=args.generator_only)
    except BaseException:
        if created:
            shutil.rmtree(out, ignore_errors=True)  # a refused import leaves nothing behind
        raise
    (out / "config.yaml").write_text(C.to_yaml(cfg))
    print(f"imported {info['file']} (official {info['gen_model']} + {info['dis_model'] or 'no D'}, "
          f"epoch {info['epoch']}) as preset {args.preset}: {path}")
    print(f"optimizers: {info['optimizers']}")
    if info["dropped_unused"]:
        print(f"dropped (never read by the official forward): {', '.join(info['dropped_unused'])}")
    print(f"evaluate:  transgan-lab eval {out}")
    print("resume:    " + " ".join(["transgan-lab train", args.preset, *(f"--set {o}" for o in overrides), "--resume", str(out)]))
    return 0
