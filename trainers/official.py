"""Official TransGAN checkpoints onto our models: the counterparts and the explicit key maps.

The official code (VITA-Group/TransGAN, research licence: nothing of it is copied here; these are
facts about its tensor names) keeps one file per architecture. Its state-dict names differ from
ours in a few regular ways, written out below as tables. Converting one official state dict:

- every tensor of our model is filled from exactly one official tensor of the same shape;
- an official buffer we recompute (the relative-position index) must equal ours;
- an official tensor no forward pass reads is listed in ``OfficialModel.unused`` and dropped;
- anything else (missing, left over, mis-shaped) is a ``CheckpointError`` naming the tensors.

``COUNTERPARTS`` says which official classes and flags each preset corresponds to, and which config
overrides make our model compute the same function. ``official_import.py`` reads the file and
writes our checkpoint; ``metrics/official.py`` holds the official evaluation protocol.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from .checkpoint import CheckpointError

V2_SOURCE = "VITA-Group/TransGAN@6b85440 (v2, models_search/)"
V1_SOURCE = "VITA-Group/TransGAN@7e5fa2d (v1, models/)"


@dataclass(frozen=True)
class OfficialModel:
    role: str  # "G" or "D"
    layout: str  # naming scheme, a key of _RULES
    source: str  # where the class is defined
    unused: tuple[str, ...] = ()  # official tensors that no forward pass reads (dropped on import)


# v1 generators define a BatchNorm/ReLU/Tanh `to_rgb` that forward never calls.
_TO_RGB = tuple(f"to_rgb.0.{n}" for n in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"))
# v2 discriminators register DiffAugment filter banks when --diff_aug has 'filter' / 'geo'; our
# augmentation lives outside D.
_AUG_FILTERS = ("Hz_fbank", "Hz_geom")

OFFICIAL_MODELS: dict[str, OfficialModel] = {
    "ViT_custom_rp": OfficialModel("G", "g_v2", V2_SOURCE),
    "TransGAN_8_8_1": OfficialModel("G", "g_v1", V1_SOURCE, _TO_RGB),
    "TransGAN_8_8_G2_1": OfficialModel("G", "g_v1", V1_SOURCE, _TO_RGB),
    "Celeba64_TransGAN": OfficialModel("G", "g_v1", V1_SOURCE, _TO_RGB),
    "ViT_custom_scale2_rp_noise": OfficialModel("D", "d_multiscale", V2_SOURCE, _AUG_FILTERS),
    "ViT_custom_scale2": OfficialModel("D", "d_multiscale", V2_SOURCE, _AUG_FILTERS),
    "ViT_8_8": OfficialModel("D", "d_vit", V1_SOURCE),
}


@dataclass(frozen=True)
class Counterpart:
    G: str  # official generator class (--gen_model)
    D: tuple[str, ...]  # official discriminator classes accepted (--dis_model); the first is the script's
    script: str  # the official script whose flags define the models
    flags: str  # the model-defining flags of that script
    overrides: tuple[str, ...] = ()  # config overrides that make our model the official function
    d_overrides: dict[str, tuple[str, ...]] = field(default_factory=dict)  # extra overrides per accepted D
    images_per_epoch: int = 0  # real images one official epoch shows D (converts its epoch to our nimg)
    note: str = ""


_V1_OFF = ("model.mtct.enabled=false",)  # the official code never had MT-CT (no super-resolution input layer)

COUNTERPARTS: dict[str, Counterpart] = {
    "cifar10-v2": Counterpart(
        G="ViT_custom_rp",
        D=("ViT_custom_scale2_rp_noise", "ViT_custom_scale2"),
        script=f"{V2_SOURCE} exps/cifar_train.py",
        flags="--gen_model ViT_custom_rp --dis_model ViT_custom_scale2_rp_noise --bottom_width 8 --img_size 32 "
        "--latent_dim 256 --gf_dim 1024 --g_depth 5,4,2 --df_dim 384 --d_depth 3 --patch_size 2 "
        "(--g_norm/--d_norm ln, --g_act/--d_act gelu, --g_mlp 4: defaults)",
        d_overrides={"ViT_custom_scale2": ("model.d.noise_injection=false",)},
        images_per_epoch=50_000,
        note="ViT_custom_scale2 is the same D without noise injection (the earlier CIFAR recipe)",
    ),
    "cifar10-xl": Counterpart(
        G="TransGAN_8_8_1",
        D=("ViT_8_8",),
        script=f"{V1_SOURCE} exps/cifar10_test.sh",
        flags="--gen_model TransGAN_8_8_1 --dis_model ViT_8_8 --bottom_width 8 --img_size 32 --latent_dim 1024 "
        "--gf_dim 1024 --df_dim 384 --d_depth 7 (--patch_size 4: default); stage depths 5,4,2 are fixed in the class",
        overrides=_V1_OFF,
        images_per_epoch=50_000,
    ),
    "stl10-xl": Counterpart(
        G="TransGAN_8_8_G2_1",
        D=("ViT_8_8",),
        script=f"{V1_SOURCE} exps/stl10_test.sh",
        flags="--gen_model TransGAN_8_8_G2_1 --dis_model ViT_8_8 --bottom_width 12 --img_size 48 --latent_dim 1024 "
        "--gf_dim 768 --df_dim 384 --d_depth 7 (--patch_size 4: default); stage depths 5,2,2 are fixed in the class",
        overrides=_V1_OFF,
        images_per_epoch=105_000,
    ),
    "celeba64-xl": Counterpart(
        G="Celeba64_TransGAN",
        D=("ViT_8_8",),
        script=f"{V1_SOURCE} exps/celeba64_test.sh",
        flags="--gen_model Celeba64_TransGAN --dis_model ViT_8_8 --bottom_width 8 --img_size 64 --latent_dim 1024 "
        "--gf_dim 1024 --df_dim 384 --d_depth 7 (--patch_size 4: default); stage depths 5,3,3,2 are fixed in the class",
        overrides=_V1_OFF + ("model.g.window_min_res=128",),
        images_per_epoch=202_599,
        note="the official 64x64 stage attends globally, our preset in 16x16 windows: the import turns windows off",
    ),
}


# ------------------------------------------------------------------------------------ key maps

# Inside one transformer block: our name -> official name. "{n}" is the norm wrapper: v2 files wrap
# every norm in a CustomNorm module (".norm"), v1 files use nn.LayerNorm directly ("").
_BLOCK = {
    "norm1.weight": "norm1{n}.weight",
    "norm1.bias": "norm1{n}.bias",
    "attn.qkv.weight": "attn.qkv.weight",
    "attn.proj.weight": "attn.proj.weight",
    "attn.proj.bias": "attn.proj.bias",
    "attn.rel_pos.table": "attn.relative_position_bias_table",
    "attn.noise_strength": "attn.noise_strength_1",
    "norm2.weight": "norm2{n}.weight",
    "norm2.bias": "norm2{n}.bias",
    "mlp.fc1.weight": "mlp.fc1.weight",
    "mlp.fc1.bias": "mlp.fc1.bias",
    "mlp.fc2.weight": "mlp.fc2.weight",
    "mlp.fc2.bias": "mlp.fc2.bias",
}
_REL_INDEX = ("attn.rel_pos.table", "attn.relative_position_bias_table", "attn.relative_position_index")


def _block(prefix: str, rest: str, norm: str) -> str | None:
    name = _BLOCK.get(rest)
    return None if name is None else f"{prefix}.{name.format(n=norm)}"


def _g_stage_v2(i: int, j: int) -> str:  # stage 0 is a StageBlock, later stages sit in upsample_blocks
    return f"blocks.block.{j}" if i == 0 else f"upsample_blocks.{i - 1}.block.{j}"


def _g_stage_v1(i: int, j: int) -> str:  # plain ModuleLists
    return f"blocks.{j}" if i == 0 else f"upsample_blocks.{i - 1}.{j}"


Rule = tuple[str, Callable[[re.Match], "str | None"]]

# Our state-dict name (full match) -> the official name, per naming scheme.
_RULES: dict[str, list[Rule]] = {
    "g_v2": [
        (r"l1\.(weight|bias)", lambda m: f"l1.{m[1]}"),
        (r"pos_embed\.(\d+)", lambda m: f"pos_embed_{int(m[1]) + 1}"),
        (r"stages\.(\d+)\.(\d+)\.(.+)", lambda m: _block(_g_stage_v2(int(m[1]), int(m[2])), m[3], ".norm")),
        (r"head\.(weight|bias)", lambda m: f"deconv.0.{m[1]}"),  # the 1x1 output conv
    ],
    "g_v1": [
        (r"l1\.(weight|bias)", lambda m: f"l1.{m[1]}"),
        (r"pos_embed\.(\d+)", lambda m: f"pos_embed_{int(m[1]) + 1}"),
        (r"stages\.(\d+)\.(\d+)\.(.+)", lambda m: _block(_g_stage_v1(int(m[1]), int(m[2])), m[3], "")),
        (r"head\.(weight|bias)", lambda m: f"deconv.0.{m[1]}"),
    ],
    "d_multiscale": [
        (r"embed1\.(weight|bias)", lambda m: f"fRGB_1.{m[1]}"),  # fine patches, 3/4 of the width
        (r"embed2\.(weight|bias)", lambda m: f"fRGB_2.{m[1]}"),  # coarse patches, 1/4 of the width
        (r"pos1", lambda m: "pos_embed_1"),
        (r"pos2", lambda m: "pos_embed_2"),
        (r"cls_token", lambda m: "cls_token"),
        (r"stage1\.(\d+)\.(.+)", lambda m: _block(f"blocks_1.{m[1]}", m[2], ".norm")),
        (r"stage2\.(\d+)\.(.+)", lambda m: _block(f"blocks_2.{m[1]}", m[2], ".norm")),
        (r"last_block\.(.+)", lambda m: _block("last_block.0", m[1], ".norm")),  # an nn.Sequential of one block
        (r"norm\.(weight|bias)", lambda m: f"norm.norm.{m[1]}"),
        (r"head\.(weight|bias)", lambda m: f"head.{m[1]}"),
    ],
    "d_vit": [
        (r"patch_embed\.(weight|bias)", lambda m: f"patch_embed.{m[1]}"),
        (r"cls_token", lambda m: "cls_token"),
        (r"pos_embed", lambda m: "pos_embed"),
        (r"blocks\.(\d+)\.(.+)", lambda m: _block(f"blocks.{m[1]}", m[2], "")),
        (r"norm\.(weight|bias)", lambda m: f"norm.{m[1]}"),
        (r"head\.(weight|bias)", lambda m: f"head.{m[1]}"),
    ],
}

# Buffers in official state dicts (not parameters): needed to lay out the official optimizer state.
_OFFICIAL_BUFFER_SUFFIXES = (
    "relative_position_index",
    "running_mean",
    "running_var",
    "num_batches_tracked",
    "Hz_fbank",
    "Hz_geom",
)


def is_official_buffer(key: str) -> bool:
    return key.rsplit(".", 1)[-1] in _OFFICIAL_BUFFER_SUFFIXES


def key_map(model: nn.Module, official_name: str) -> dict[str, str]:
    """Our state-dict name -> official name, for every tensor of ``model``; raises for a tensor of
    ours that the official class does not have (e.g. an MT-CT input layer)."""
    spec = OFFICIAL_MODELS[official_name]
    out, unknown = {}, []
    for ours in model.state_dict():
        for pattern, to_official in _RULES[spec.layout]:
            m = re.fullmatch(pattern, ours)
            if m:
                name = to_official(m)
                break
        else:
            name = None
        if name is None:
            unknown.append(ours)
        else:
            out[ours] = name
    if unknown:
        raise CheckpointError(
            f"our {spec.role} has tensor(s) {', '.join(unknown[:5])} that the official {official_name} does not "
            "have; import into the preset's official counterpart config (see COUNTERPARTS overrides)"
        )
    return out


def strip_module_prefix(sd: dict, *, what: str) -> dict:
    """Remove the 'module.' that DataParallel / DistributedDataParallel put before every name."""
    keys = list(sd)
    wrapped = [k.startswith("module.") for k in keys]
    if keys and all(wrapped):
        return {k[len("module.") :]: v for k, v in sd.items()}
    if any(wrapped):
        a = next(k for k, w in zip(keys, wrapped) if w)
        b = next(k for k, w in zip(keys, wrapped) if not w)
        raise CheckpointError(
            f"{what} mixes names with and without the 'module.' prefix ({a!r}, {b!r}); it is not one model's state dict"
        )
    return dict(sd)


def _shape(t) -> str:
    return "x".join(map(str, tuple(t.shape))) or "scalar"


def convert_state_dict(
    *,
    official: dict[str, torch.Tensor],  # one official state dict, 'module.' already removed
    model: nn.Module,  # our G or D built from the target config (its tensors set the shapes)
    official_name: str,  # the official class the tensors come from (a key of OFFICIAL_MODELS)
    what: str,  # the state dict's name in the file, for messages (e.g. "avg_gen_state_dict")
) -> dict[str, torch.Tensor]:
    """Official tensors -> our state dict (see the module docstring for the rules)."""
    spec = OFFICIAL_MODELS[official_name]
    kmap = key_map(model, official_name)
    ours = model.state_dict()
    missing, misshaped, out, used = [], [], {}, set()
    for our_key, off_key in kmap.items():
        t = official.get(off_key)
        if not isinstance(t, torch.Tensor):
            missing.append(f"{off_key} (for our {our_key}, {_shape(ours[our_key])})")
            continue
        used.add(off_key)
        if t.shape != ours[our_key].shape:
            misshaped.append(f"{off_key} is {_shape(t)}, our {our_key} is {_shape(ours[our_key])}")
            continue
        out[our_key] = t.detach().to(dtype=ours[our_key].dtype).clone()
    bad_index = []
    for our_key, off_key in kmap.items():  # official relative-position indices: recomputed by us, must agree
        if our_key.endswith(_REL_INDEX[0]):
            idx_key = off_key[: -len(_REL_INDEX[1])] + _REL_INDEX[2]
            if idx_key in official:
                used.add(idx_key)
                mine = model.get_buffer(our_key[: -len("table")] + "index")
                if not torch.equal(official[idx_key].to(torch.int64).reshape(mine.shape), mine.cpu()):
                    bad_index.append(idx_key)
    extra = [k for k in official if k not in used and k not in spec.unused]
    if missing or misshaped or extra or bad_index:
        parts = []
        for label, items in (
            ("missing", missing),
            ("mis-shaped", misshaped),
            ("mapping to nothing in our model", extra),
            ("with a different relative-position index", bad_index),
        ):
            if items:
                more = f" and {len(items) - 4} more" if len(items) > 4 else ""
                parts.append(f"{len(items)} tensor(s) {label}: {'; '.join(items[:4])}{more}")
        raise CheckpointError(
            f"{what} does not fit our {spec.role} as the official {official_name}: {'. '.join(parts)}. "
            f"Check that --preset matches the official --gen_model/--dis_model and flags the file was trained with "
            f"(README: Official checkpoints; --official-d when the file does not record its D), and any --set overrides"
        )
    return out


def convert_adam_state(
    *,
    official_opt: dict,  # torch.optim.Adam state_dict() saved by the official run
    official_keys: list[str],  # names of the official state dict, 'module.' removed, in saved order
    kmap: dict[str, str],  # our name -> official name (key_map)
    model: nn.Module,  # our model; the result is laid out over model.parameters()
    param_groups: list[dict],  # our optimizer's param_groups (hyper-parameters from our config)
    what: str,  # for messages, e.g. "gen_optimizer"
) -> dict:
    """The official Adam moments, re-indexed onto our parameter order (our hyper-parameters kept)."""
    official_params = [k for k in official_keys if not is_official_buffer(k)]  # = official model.parameters() order
    groups = official_opt.get("param_groups") if isinstance(official_opt, dict) else None
    if not isinstance(groups, list) or not isinstance(official_opt.get("state"), dict):
        raise CheckpointError(f"{what} is not an optimizer state dict (no 'state' / 'param_groups')")
    n_official = sum(len(g.get("params", ())) for g in groups)
    if n_official != len(official_params):
        raise CheckpointError(
            f"{what} holds {n_official} parameters but the model state dict has {len(official_params)}; "
            "they are not from the same model (pass --fresh-optimizers to start the optimizers anew)"
        )
    ids = [i for g in groups for i in g["params"]]
    to_ours = {off: ours for ours, off in kmap.items()}
    our_index = {name: i for i, (name, _) in enumerate(model.named_parameters())}
    our_params = dict(model.named_parameters())
    state: dict[int, dict] = {}
    for pos, pid in enumerate(ids):
        s = official_opt["state"].get(pid)
        if not s:
            continue  # a parameter that never received a gradient has no moments
        off_key = official_params[pos]
        if off_key not in to_ours:
            continue  # an official parameter no forward reads (OfficialModel.unused)
        name = to_ours[off_key]
        p = our_params[name]
        moments = {}
        for k in ("exp_avg", "exp_avg_sq"):
            t = s.get(k)
            if not isinstance(t, torch.Tensor) or t.shape != p.shape:
                raise CheckpointError(
                    f"{what}: the {k} of {off_key} is {'missing' if t is None else _shape(t)}, "
                    f"our {name} is {_shape(p)}"
                )
            moments[k] = t.detach().to(p.dtype).clone()
        step = s.get("step", 0)
        step = float(step.item() if isinstance(step, torch.Tensor) else step)
        state[our_index[name]] = {"step": torch.tensor(step, dtype=torch.float32), **moments}
    return {"state": state, "param_groups": param_groups}
