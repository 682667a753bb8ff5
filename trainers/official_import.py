"""Read an official TransGAN checkpoint without running code and write it as one of our checkpoints.

The file the official ``train_derived.py`` saves is a dict: ``gen_state_dict``, ``dis_state_dict``,
``avg_gen_state_dict`` (the EMA generator; a state dict in every official revision, a list of
tensors in parameter order is also accepted), ``gen_optimizer`` / ``dis_optimizer`` (Adam),
``epoch``, ``best_fid``, ``fixed_z``, ``path_helper`` and, from the v2 code on, ``gen_model`` /
``dis_model``; names carry DistributedDataParallel's ``module.`` prefix. ``test.py`` also accepts a
bare generator state dict, so that is read too (``generator_only``).

Loading is ``torch.load(weights_only=True)``: tensors, plain containers and numpy scalars (the
official ``best_fid`` is one) only; a file that needs anything else to unpickle is refused with
the global it asked for. Key maps and checks: ``trainers/official.py``.
"""

from __future__ import annotations

import hashlib
import pickle
import re
import zipfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import checkpoint as ckpt
from . import hashing
from .checkpoint import CheckpointError
from .official import (
    COUNTERPARTS,
    OFFICIAL_MODELS,
    Counterpart,
    convert_adam_state,
    convert_state_dict,
    is_official_buffer,
    key_map,
    strip_module_prefix,
)
from .schedule import images_per_step

# numpy scalar reconstruction (data only); files written under numpy 1.x name it numpy.core.multiarray.scalar
_SCALAR = (np._core if hasattr(np, "_core") else np.core).multiarray.scalar
_NUMPY_GLOBALS = [
    _SCALAR,
    (_SCALAR, "numpy.core.multiarray.scalar"),
    np.dtype,
    *(type(np.dtype(t)) for t in ("float64", "float32", "int64", "int32", "bool")),
]


def read_official_file(path: str | Path) -> Any:
    """The file's object, loaded code-free; CheckpointError (with the reason) otherwise."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"{path} is not a file; give the official checkpoint file (e.g. ./cifar_checkpoint "
            "or logs/<exp>/Model/checkpoint)"
        )
    try:
        with torch.serialization.safe_globals(_NUMPY_GLOBALS):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        m = re.search(r"GLOBAL ([\w.]+)", str(e))
        if m is None:  # not a pickle torch.load understands (garbage, a truncated file, an exotic opcode)
            why = re.search(r"WeightsUnpickler error: \s*(.+)", str(e))
            raise CheckpointError(
                f"{path} is not a readable torch checkpoint ({why.group(1).strip() if why else 'unpickling failed'})"
            ) from None
        raise CheckpointError(
            f"refusing to load {path}: it needs {m.group(1)} to unpickle, and unpickling that could run code. Only "
            "tensors, plain containers and numpy scalars are read (torch.load weights_only=True). If you trust the "
            "file, re-save just its state dicts and optimizer states with torch.save in a separate environment "
            "and import that"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as e:
        raise CheckpointError(
            f"{path} is not a readable torch checkpoint ({type(e).__name__}: "
            f"{str(e).strip().splitlines()[0] if str(e).strip() else 'damaged'})"
        ) from None


def official_names(obj: Any) -> tuple[str | None, str | None]:
    """(gen_model, dis_model) recorded in the file, when it records them (v2 code)."""
    if isinstance(obj, dict):
        g, d = obj.get("gen_model"), obj.get("dis_model")
        return (g if isinstance(g, str) else None), (d if isinstance(d, str) else None)
    return None, None


def is_bare_state_dict(obj: Any) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _as_state_dict(value: Any, *, what: str, names_from: dict | None) -> dict:
    """A state dict from the file (a list of tensors is named by the generator's parameter order)."""
    if isinstance(value, dict):
        return strip_module_prefix(value, what=what)
    if isinstance(value, (list, tuple)) and names_from is not None and all(isinstance(t, torch.Tensor) for t in value):
        params = [k for k in names_from if not is_official_buffer(k)]
        if len(params) != len(value):
            raise CheckpointError(
                f"{what} is a list of {len(value)} tensors, the generator has {len(params)} "
                "parameters; it is not that generator's parameter list"
            )
        return dict(zip(params, value))
    raise CheckpointError(f"{what} is a {type(value).__name__}, not a state dict")


def _adam(params, lr: float, opt_cfg: Any) -> torch.optim.Adam:  # as the training engine builds it on CPU
    return torch.optim.Adam(params, lr=lr, betas=(opt_cfg.beta1, opt_cfg.beta2), foreach=True)


def import_official(
    *,
    obj: Any,  # the file's object (read_official_file)
    source: str | Path,  # the file's path (hashed and recorded)
    cfg: Any,  # resolved config of the preset with the counterpart's overrides (platform builds it)
    preset: str,  # key of COUNTERPARTS
    d_name: str,  # official discriminator class the file holds (one of the counterpart's D)
    out_dir: str | Path,  # run folder to create: <out>/checkpoints/ckpt-<step:08d>/
    fresh_optimizers: bool = False,  # ignore the official optimizer states (Adam starts anew)
    generator_only: bool = False,  # accept a bare generator state dict: G = G_ema = file, fresh D
) -> tuple[Path, dict]:
    """Convert and write; returns (checkpoint dir, what was imported) for the report and the manifest."""
    from .models import build_discriminator, build_generator
    from .trainer import TrainState

    cp: Counterpart = COUNTERPARTS[preset]
    if d_name not in cp.D:
        raise CheckpointError(f"preset {preset} corresponds to the official {' or '.join(cp.D)}, not {d_name}")
    root = Path(out_dir) / "checkpoints"
    if ckpt.list_checkpoints(root):
        raise CheckpointError(f"{out_dir} already holds checkpoints; import into a new --out folder")
    source = Path(source)
    torch.manual_seed(int(cfg.seed))  # what is not in the file (a fresh D) is initialised reproducibly
    G, D = build_generator(cfg), build_discriminator(cfg)
    bare = is_bare_state_dict(obj)
    if bare and not generator_only:
        raise CheckpointError(
            f"{source} holds only one state dict (a generator, as test.py accepts), no discriminator or optimizers; "
            "pass --generator-only to import it as G and G_ema with a freshly initialised D and optimizers"
        )
    if not bare and not (isinstance(obj, dict) and "gen_state_dict" in obj):
        keys = sorted(obj)[:8] if isinstance(obj, dict) else type(obj).__name__
        raise CheckpointError(
            f"{source} is not an official TransGAN checkpoint: expected the dict train_derived.py "
            f"saves (gen_state_dict, dis_state_dict, avg_gen_state_dict, ...), found {keys}"
        )
    gen = strip_module_prefix(obj if bare else obj["gen_state_dict"], what="gen_state_dict")
    state = {"G": convert_state_dict(official=gen, model=G, official_name=cp.G, what="gen_state_dict")}
    if bare:
        state["G_ema"] = state["G"]
        state["D"] = D.state_dict()
        epoch = None
    else:
        for need in ("dis_state_dict", "avg_gen_state_dict"):
            if need not in obj:
                raise CheckpointError(f"{source} has no {need}; an official train_derived.py checkpoint always has one")
        ema = _as_state_dict(obj["avg_gen_state_dict"], what="avg_gen_state_dict", names_from=gen)
        state["G_ema"] = convert_state_dict(official=ema, model=G, official_name=cp.G, what="avg_gen_state_dict")
        dis = strip_module_prefix(obj["dis_state_dict"], what="dis_state_dict")
        state["D"] = convert_state_dict(official=dis, model=D, official_name=d_name, what="dis_state_dict")
        epoch = obj.get("epoch")
        epoch = int(epoch) if isinstance(epoch, (int, np.integer)) else None
    G.load_state_dict(state["G"])
    D.load_state_dict(state["D"])
    opt_G, opt_D = _adam(G.parameters(), cfg.optim.lr_g, cfg.optim), _adam(D.parameters(), cfg.optim.lr_d, cfg.optim)
    optimizers = "fresh"
    if not bare and not fresh_optimizers:
        for off_key, off_sd, model, off_name, opt in (
            ("gen_optimizer", gen, G, cp.G, opt_G),
            ("dis_optimizer", dis, D, d_name, opt_D),
        ):
            if off_key not in obj:
                raise CheckpointError(f"{source} has no {off_key}; pass --fresh-optimizers to start Adam anew")
            opt.load_state_dict(
                convert_adam_state(
                    official_opt=obj[off_key],
                    official_keys=list(off_sd),
                    kmap=key_map(model, off_name),
                    model=model,
                    param_groups=opt.state_dict()["param_groups"],
                    what=off_key,
                )
            )
        optimizers = "converted from the official Adam states (our lr/betas from the config)"
    per_step = images_per_step(cfg)
    step = (epoch or 0) * cp.images_per_epoch // per_step
    nimg = step * per_step
    train_state = {k: v for k, v in asdict(TrainState(step=step, nimg=nimg)).items() if k != "config_changes"}
    best_fid = obj.get("best_fid") if isinstance(obj, dict) else None
    info = {
        "file": source.name,
        "sha256": _sha256(source),
        "preset": preset,
        "gen_model": cp.G,
        "dis_model": d_name if not bare else None,
        "source": {"G": OFFICIAL_MODELS[cp.G].source, "D": OFFICIAL_MODELS[d_name].source, "script": cp.script},
        "epoch": epoch,
        "best_fid": float(best_fid) if isinstance(best_fid, (float, int, np.floating)) else None,
        "generator_only": bare,
        "optimizers": optimizers,
        "nimg_rule": f"official epoch {epoch} x {cp.images_per_epoch} images per epoch, rounded down to whole steps "
        f"of {per_step} images"
        if epoch is not None
        else "no epoch in the file: step 0",
        "rng": "none recorded: a resume seeds the augmentation RNG from (seed, step)",
        "dropped_unused": sorted(k for k in gen if k in OFFICIAL_MODELS[cp.G].unused)
        + ([] if bare else sorted(k for k in dis if k in OFFICIAL_MODELS[d_name].unused)),
    }
    meta = {
        "nimg": nimg,
        "kimg": nimg / 1000,
        "config": hashing.as_dict(cfg),
        "config_hash": hashing.config_hash(cfg),
        "dynamics_hash": hashing.dynamics_hash(cfg),
        "world_size": 1,
        "best_value": None,
        "official": info,
    }
    payload = {
        "G": state["G"],
        "D": D.state_dict(),
        "G_ema": state["G_ema"],
        "opt_G": opt_G.state_dict(),
        "opt_D": opt_D.state_dict(),
        "rng": [],
        "data": {"position": nimg, "seed": int(cfg.seed)},
        "train_state": train_state,
    }
    path = ckpt.save_checkpoint(root, step=step, state=payload, meta=meta)
    return path, info
