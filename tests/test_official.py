"""import-official: official TransGAN weights give the official outputs in our models.

The fixtures (tests/data/official/, see its README) are small official models with their outputs,
computed by the official code. Each test writes a file in the format the official train_derived.py
saves, runs the real `transgan-lab import-official` on it, loads our checkpoint, and compares.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from transgan_lab.platform import config as C
from transgan_lab.platform.cli import main
from transgan_lab.trainers import checkpoint as ckpt
from transgan_lab.trainers.models import build_discriminator, build_generator, locality_width
from transgan_lab.trainers.official import COUNTERPARTS, is_official_buffer, key_map

DATA = Path(__file__).parent / "data" / "official"

# Our config for the fixtures' small official models (their args are in the fixture README).
V2 = [
    "model.g.embed_dim=64",
    "model.g.latent_dim=16",
    "model.g.bottom=4",
    "model.g.depths=[1,2,1]",
    "data.resolution=16",
    "model.d.embed_dim=32",
    "model.d.depth=2",
]
V1 = ["model.g.embed_dim=64", "model.g.latent_dim=16", "model.d.embed_dim=32", "model.d.depth=2"]
# Local data and metrics, so that resume and eval run here (not part of the model).
LOCAL = [
    "data.dataset=digits",
    "data.channels=3",
    "data.hflip=false",
    "eval.metrics=[digits_is]",
    "eval.primary=digits_is",
    "eval.n_fake=20",
    "train.precision=fp32",
]
FIXTURES = {  # fixture -> (preset, official G, official D, our overrides)
    "v2_cifar": ("cifar10-v2", "ViT_custom_rp", "ViT_custom_scale2_rp_noise", V2),
    "v2_cifar_scale2_d": ("cifar10-v2", "ViT_custom_rp", "ViT_custom_scale2", V2),
    "v1_cifar": (
        "cifar10-xl",
        "TransGAN_8_8_1",
        "ViT_8_8",
        V1 + ["model.g.bottom=4", "model.g.depths=[1,4,2]", "data.resolution=16"],
    ),
    "v1_stl": (
        "stl10-xl",
        "TransGAN_8_8_G2_1",
        "ViT_8_8",
        V1 + ["model.g.bottom=6", "model.g.depths=[1,2,2]", "data.resolution=24"],
    ),
    "v1_celeba64": (
        "celeba64-xl",
        "Celeba64_TransGAN",
        "ViT_8_8",
        V1 + ["model.g.bottom=4", "model.g.depths=[1,3,3,2]", "model.g.heads=1", "data.resolution=32"],
    ),
}
TOL = 1e-5  # max |ours - official| / max |official|


def fixture(name: str) -> dict:
    return torch.load(DATA / f"{name}.pt", weights_only=True)


def as_saved(sd: dict) -> dict:
    """A fixture state dict as the official DDP run saves it: 'module.' names, int64 indices."""
    return {f"module.{k}": (v.to(torch.int64) if v.dtype == torch.int16 else v.clone()) for k, v in sd.items()}


def shifted(sd: dict, by: float) -> dict:
    return {k: (v + by if v.is_floating_point() else v) for k, v in sd.items()}


def official_adam(sd: dict, *, step: int = 7, unused: tuple = ()) -> dict:
    """Adam state over the official parameter order: moments of parameter i are filled with i + 1."""
    params = [k for k in sd if not is_official_buffer(k.removeprefix("module."))]
    state = {
        i: {
            "step": step,
            "exp_avg": torch.full_like(sd[k], (i + 1) * 1e-4),
            "exp_avg_sq": torch.full_like(sd[k], (i + 1) * 1e-8),
        }
        for i, k in enumerate(params)
        if k.removeprefix("module.") not in unused
    }
    group = {
        "lr": 1e-4,
        "betas": (0.0, 0.99),
        "eps": 1e-8,
        "weight_decay": 0,
        "amsgrad": False,
        "params": list(range(len(params))),
    }
    return {"state": state, "param_groups": [group]}


def write_official(
    path: Path,
    name: str,
    *,
    ema_shift: float = 0.0,
    drop=(),
    extra=None,
    reshape=None,
    epoch: int = 3,
    names: bool = True,
    avg_as_list: bool = False,
) -> Path:
    """An official train_derived.py checkpoint from a fixture. The fixture's G goes in as the EMA
    generator (avg_gen_state_dict); gen_state_dict is that G shifted by `ema_shift`."""
    fx = fixture(name)
    preset, g_name, d_name, _ = FIXTURES[name]
    g = fixture("v2_cifar")["G"] if "G" not in fx else fx["G"]
    gen, avg, dis = as_saved(shifted(g, ema_shift)), as_saved(g), as_saved(fx["D"])
    for key in drop:
        dis.pop(key)
    dis.update(extra or {})
    for key, shape in (reshape or {}).items():
        dis[key] = torch.zeros(shape)
    obj = {
        "epoch": epoch,
        "best_fid": 1e4,
        "gen_state_dict": gen,
        "dis_state_dict": dis,
        "avg_gen_state_dict": [v for k, v in avg.items() if not is_official_buffer(k)] if avg_as_list else avg,
        "gen_optimizer": official_adam(gen, unused=tuple(f"to_rgb.0.{n}" for n in ("weight", "bias"))),
        "dis_optimizer": official_adam(dis),
        "fixed_z": torch.randn(4, 16),
        "path_helper": {"prefix": "logs/cifar_train_2021_08_04_12_00_00"},
    }
    if names:
        obj.update(gen_model=g_name, dis_model=d_name)
    torch.save(obj, path)
    return path


def run_import(tmp_path: Path, name: str, file: Path | None = None, *extra: str) -> tuple[int, Path]:
    preset, _, _, sets = FIXTURES[name]
    file = file or write_official(tmp_path / f"{name}.pth", name)
    out = tmp_path / f"run-{name}"
    args = ["import-official", str(file), "--preset", preset, "--out", str(out)]
    for s in sets + LOCAL:
        args += ["--set", s]
    return main(args + list(extra)), out


def our_models(out: Path):
    found, manifest = ckpt.latest_valid(out)
    cfg = C.from_dict(manifest["config"])
    _, state = ckpt.load_checkpoint(found)
    models = {}
    for name, build in (("G", build_generator), ("G_ema", build_generator), ("D", build_discriminator)):
        m = build(cfg).eval()
        m.load_state_dict(state[name])
        models[name] = m
    return cfg, models, manifest, state


def rel_err(ours: torch.Tensor, official: torch.Tensor) -> float:
    return float((ours.flatten() - official.flatten()).abs().max() / official.abs().max())


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_imported_weights_give_the_official_outputs(tmp_path, name):
    rc, out = run_import(tmp_path, name)
    assert rc == 0
    cfg, m, manifest, _ = our_models(out)
    fx = fixture(name)
    with torch.no_grad():
        torch.manual_seed(fx["D_noise_seed"] if "D_noise_seed" in fx else 0)
        d_err = rel_err(m["D"](fx["x"]), fx["D_out"])
        assert d_err <= TOL, d_err
        if "G" in fx:
            outs = fx["G_out"] if isinstance(fx["G_out"], dict) else {"200": fx["G_out"]}
            for epoch, official in outs.items():
                w = locality_width(cfg.model.g.locality, int(epoch))  # v1: the official epoch-based mask
                err = rel_err(m["G_ema"](fx["z"], locality_width=w), official)
                assert err <= TOL, (epoch, err)
                # gen_state_dict was written as the EMA weights shifted by 0 here: G equals G_ema
                assert rel_err(m["G"](fx["z"], locality_width=w), official) <= TOL
    assert manifest["official"]["gen_model"] == FIXTURES[name][1]
    assert manifest["official"]["dis_model"] == FIXTURES[name][2]


def test_gen_and_avg_gen_go_to_G_and_G_ema(tmp_path):
    file = write_official(tmp_path / "ck.pth", "v2_cifar", ema_shift=0.01)
    rc, out = run_import(tmp_path, "v2_cifar", file)
    assert rc == 0
    _, m, _, _ = our_models(out)
    fx = fixture("v2_cifar")
    with torch.no_grad():
        assert rel_err(m["G_ema"](fx["z"]), fx["G_out"]) <= TOL
        assert rel_err(m["G"](fx["z"]), fx["G_out"]) > 1e-3  # the raw G is the shifted one


def test_avg_gen_as_a_parameter_list(tmp_path):
    file = write_official(tmp_path / "ck.pth", "v1_cifar", ema_shift=0.01, avg_as_list=True)
    rc, out = run_import(tmp_path, "v1_cifar", file)
    assert rc == 0
    _, m, _, _ = our_models(out)
    fx = fixture("v1_cifar")
    with torch.no_grad():
        assert rel_err(m["G_ema"](fx["z"]), fx["G_out"]["200"]) <= TOL


def test_official_adam_moments_follow_the_key_map(tmp_path):
    file = write_official(tmp_path / "ck.pth", "v1_cifar")
    rc, out = run_import(tmp_path, "v1_cifar", file)
    assert rc == 0
    cfg, m, manifest, state = our_models(out)
    saved = torch.load(file, weights_only=True)
    for role, model, off_name, opt in (
        ("gen_state_dict", m["G"], "TransGAN_8_8_1", "opt_G"),
        ("dis_state_dict", m["D"], "ViT_8_8", "opt_D"),
    ):
        official_params = [k.removeprefix("module.") for k in saved[role] if not is_official_buffer(k)]
        kmap = key_map(model, off_name)
        ours = dict(enumerate(n for n, _ in model.named_parameters()))
        assert sorted(state[opt]["state"]) == sorted(ours)  # every parameter of ours got its moments
        for idx, name in ours.items():
            i = official_params.index(kmap[name])
            s = state[opt]["state"][idx]
            assert float(s["step"]) == 7
            assert torch.all(s["exp_avg"] == (i + 1) * 1e-4) and torch.all(s["exp_avg_sq"] == (i + 1) * 1e-8)
        assert state[opt]["param_groups"][0]["betas"] == (cfg.optim.beta1, cfg.optim.beta2)
    assert "to_rgb.0.weight" in manifest["official"]["dropped_unused"]
    # epoch 3 of 50k images -> whole steps of n_critic * batch_d images
    per_step = cfg.optim.n_critic * cfg.optim.batch_d
    assert manifest["step"] == 3 * 50_000 // per_step and manifest["nimg"] == manifest["step"] * per_step


def _refused(capsys, rc: int, out: Path, *names: str) -> str:
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err and err.startswith("error: ") and err.strip().count("\n") == 0, err
    for n in names:
        assert n in err, (n, err)
    assert not out.exists()  # nothing left behind
    return err


def test_missing_extra_or_misshaped_tensor_is_refused_naming_it(tmp_path, capsys):
    f = write_official(tmp_path / "a.pth", "v2_cifar", drop=["module.blocks_2.1.attn.qkv.weight"])
    rc, out = run_import(tmp_path, "v2_cifar", f)
    _refused(capsys, rc, out, "missing", "blocks_2.1.attn.qkv.weight", "stage2.1.attn.qkv.weight", "dis_state_dict")
    f = write_official(tmp_path / "b.pth", "v2_cifar", extra={"module.blocks_1.0.attn.gamma": torch.ones(3)})
    rc, out = run_import(tmp_path, "v2_cifar", f)
    _refused(capsys, rc, out, "mapping to nothing", "blocks_1.0.attn.gamma")
    f = write_official(tmp_path / "c.pth", "v2_cifar", reshape={"module.head.weight": (1, 33)})
    rc, out = run_import(tmp_path, "v2_cifar", f)
    _refused(capsys, rc, out, "mis-shaped", "head.weight is 1x33", "our head.weight is 1x32")


def test_a_discriminator_without_the_noise_strengths_is_refused(tmp_path, capsys):
    # ViT_custom_scale2_rp_noise has a learned noise strength in every block (the last one too):
    # a D without them cannot hold the file.
    rc, out = run_import(tmp_path, "v2_cifar", None, "--set", "model.d.noise_injection=false")
    _refused(capsys, rc, out, "noise_strength_1")


def test_pickled_code_is_refused_with_the_reason(tmp_path, capsys):
    class Payload:
        def __reduce__(self):
            return (os.system, ("echo should-not-run",))

    f = tmp_path / "evil.pth"
    torch.save({"gen_state_dict": {}, "x": Payload()}, f)
    rc, out = run_import(tmp_path, "v2_cifar", f)
    err = _refused(capsys, rc, out, "refusing to load", "system", "could run code")
    assert "should-not-run" not in err
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint at all")
    rc, out = run_import(tmp_path, "v2_cifar", tmp_path / "junk.pth")
    _refused(capsys, rc, out, "not a readable torch checkpoint")


def test_wrong_preset_and_no_counterpart_are_refused(tmp_path, capsys):
    f = write_official(tmp_path / "v1.pth", "v1_cifar")  # records --gen_model TransGAN_8_8_1
    rc, out = run_import(tmp_path, "v2_cifar", f)  # a v1 file into cifar10-v2
    _refused(capsys, rc, out, "--gen_model TransGAN_8_8_1", "use --preset cifar10-xl")
    rc = main(["import-official", str(f), "--preset", "cifar10-s", "--out", str(tmp_path / "s")])
    _refused(capsys, rc, tmp_path / "s", "no official TransGAN counterpart", "cifar10-v2")


def test_bare_generator_file_needs_generator_only(tmp_path, capsys):
    f = tmp_path / "g.pth"
    torch.save(as_saved(fixture("v2_cifar")["G"]), f)
    rc, out = run_import(tmp_path, "v2_cifar", f)
    _refused(capsys, rc, out, "--generator-only")
    rc, out = run_import(tmp_path, "v2_cifar", f, "--generator-only")
    assert rc == 0
    _, m, manifest, _ = our_models(out)
    fx = fixture("v2_cifar")
    with torch.no_grad():
        assert rel_err(m["G_ema"](fx["z"]), fx["G_out"]) <= TOL
    assert manifest["official"]["generator_only"] and manifest["official"]["optimizers"] == "fresh"


def test_parameter_counts_equal_the_official_models():
    # Counted from the official code (tests/data/official/README.md); v1 G minus its unused to_rgb.
    official = {
        "cifar10-v2": (83_312_495, 10_210_400),
        "cifar10-xl": (133_594_563 - 2_048, 12_458_497),
        "stl10-xl": (150_062_931 - 1_536, 12_489_217),
        "celeba64-xl": (132_927_219 - 2_048, 12_532_225),
    }
    for preset, (g, d) in official.items():
        cfg = C.load_config(preset, list(COUNTERPARTS[preset].overrides))
        with torch.device("meta"):
            G, D = build_generator(cfg), build_discriminator(cfg)
        assert (sum(p.numel() for p in G.parameters()), sum(p.numel() for p in D.parameters())) == (g, d), preset
    # the official ViT_custom_scale2 D = the same without its 7 noise strengths
    cfg = C.load_config("cifar10-v2", ["model.d.noise_injection=false"])
    with torch.device("meta"):
        assert sum(p.numel() for p in build_discriminator(cfg).parameters()) == 10_210_393


def test_celeba64_import_attends_globally_like_the_official_model():
    cfg = C.load_config("celeba64-xl", list(COUNTERPARTS["celeba64-xl"].overrides))
    with torch.device("meta"):
        G = build_generator(cfg)
    assert G.windows == [None, None, None, None] and G.sides[-1] == 64 and G.sr_embed is None


def test_imported_checkpoint_resumes_and_samples_reproducibly(tmp_path):
    rc, out = run_import(tmp_path, "v2_cifar")
    assert rc == 0
    found, manifest = ckpt.latest_valid(out)
    step, nimg = manifest["step"], manifest["nimg"]
    assert step > 0 and (out / "config.yaml").is_file()
    pngs = []
    for k in range(2):
        assert main(["sample", str(found), "--n", "4", "--seed", "5", "--out", str(tmp_path / f"s{k}")]) == 0
        pngs.append(sorted((tmp_path / f"s{k}").glob("*.png")))
    assert len(pngs[0]) == 4 and [p.read_bytes() for p in pngs[0]] == [p.read_bytes() for p in pngs[1]]
    _, before, _, _ = our_models(out)

    per_step = 4 * 64  # cifar10-v2: n_critic 4 x batch_d 64
    args = ["train", "cifar10-v2", "--resume", str(out), "--kimg", str((nimg + per_step - 0.5) / 1000), "--no-tracking"]
    for s in FIXTURES["v2_cifar"][3] + LOCAL:
        args += ["--set", s]
    assert main(args) == 0
    found2, manifest2 = ckpt.latest_valid(out)
    assert manifest2["step"] == step + 1 and manifest2["nimg"] == nimg + per_step
    _, after, _, _ = our_models(out)
    z = fixture("v2_cifar")["z"]
    with torch.no_grad():
        moved = rel_err(after["G"](z), before["G"](z))
        ema_moved = rel_err(after["G_ema"](z), before["G_ema"](z))
    assert moved > 0 and 0 < ema_moved < moved  # one Adam step on G; the EMA follows it only partly


def test_official_file_loads_without_numpy_allowlist_surprises(tmp_path):
    # The official best_fid is a numpy float64 (calculate_fid_given_paths returns one).
    import numpy as np

    from transgan_lab.trainers.official_import import read_official_file

    buf = tmp_path / "np.pth"
    torch.save({"best_fid": np.float64(10.72), "epoch": np.int64(200), "t": torch.ones(1)}, buf)
    obj = read_official_file(buf)
    assert obj["best_fid"] == 10.72 and int(obj["epoch"]) == 200
