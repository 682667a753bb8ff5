"""The typed experiment config: bad input names the field, presets load, overrides, hashes, CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from transgan_lab.platform import config as C
from transgan_lab.platform.config import ConfigError, load_config

REPO = Path(__file__).resolve().parents[1]

# (overrides on digits-tiny, substrings the message must contain: the field, and the bad value or the fix)
BAD_OVERRIDES = [
    (["model.g.bottom=5"], ["model.g.bottom=5", "data.resolution=16", "set model.g.bottom=4"]),
    (["resources.workers=2", "optim.batch_d=63"], ["optim.batch_d=63", "resources.workers x optim.accum"]),
    (["optim.accum=3", "optim.batch_d=64", "optim.batch_g=64"], ["optim.batch_d=64", "optim.batch_g=64", "1 x 3"]),
    (["data.dataset=mnist"], ["data.dataset", "'mnist'", "'cifar10'"]),
    (["data.channels=2"], ["data.channels", "(got 2)"]),
    (["data.resolution=4"], ["data.resolution", "greater than or equal to 8"]),
    (["model.g.heads=7", "model.g.embed_dim=256"], ["model.g.heads=7", "model.g.embed_dim=256"]),
    (["model.g.embed_dim=100"], ["model.g.embed_dim=100", "4^(stages-1)=16"]),
    (["model.g.depths=[]"], ["model.g.depths=[]", "positive block count"]),
    (["model.g.norm=bn"], ["model.g.norm", "(got 'bn')"]),
    (["model.g.locality.schedule=[[5, 4], [2, 6]]"], ["model.g.locality.schedule", "strictly increasing"]),
    (["model.g.locality.off_epoch=10"], ["model.g.locality.off_epoch=10", "last schedule epoch 42"]),
    (["model.d.heads=5", "model.d.embed_dim=128"], ["model.d.embed_dim=128", "model.d.heads=5"]),
    (["model.d.patch_size=3"], ["model.d.patch_size=3", "data.resolution=16"]),
    (["model.d.arch=multiscale", "model.d.embed_dim=130", "model.d.heads=2"], ["model.d.embed_dim=130", "multiscale"]),
    (["model.mtct.enabled=true", "model.g.arch=conv"], ["model.mtct.enabled", "model.g.arch=transgan"]),
    (["optim.lr_g=-1"], ["optim.lr_g", "greater than 0"]),
    (["optim.lr_g=abc"], ["optim.lr_g", "(got 'abc')"]),
    (["optim.n_critic=1.5"], ["optim.n_critic", "(got 1.5)"]),
    (["optim.beta1=1.0"], ["optim.beta1", "less than 1"]),
    (["train.kimg=0"], ["train.kimg", "greater than 0"]),
    (["train.compile=maybe"], ["train.compile", "(got 'maybe')"]),
    (["loss.kind=lsgan"], ["loss.kind", "(got 'lsgan')"]),
    (["augment.policy=[rotate]"], ["augment.policy", "(got 'rotate')"]),
    (["augment.erase_min=0.8", "augment.erase_max=0.3"], ["augment.erase_min", "augment.erase_max"]),
    (["eval.metrics=[fid2]"], ["eval.metrics", "'fid2'"]),
    (["eval.primary=fid"], ["eval.primary='fid'", "eval.metrics"]),
    (["eval.metrics=[fid]", "eval.primary=fid"], ["eval.metrics", "data.channels=3"]),
    (["data.hflip=true"], ["data.hflip=true", "set data.hflip=false"]),
    (
        ["data.dataset=cifar10", "eval.metrics=[fid]", "eval.primary=fid", "data.channels=3"],
        ["data.root", "data.download=true"],
    ),
    (["resources.workers=2", "resources.gpus_per_worker=0.5"], ["resources.gpus_per_worker", "whole number"]),
    (["sweep.reduction_factor=1"], ["sweep.reduction_factor"]),
    (["seed=abc"], ["seed", "(got 'abc')"]),
    (["data=3"], ["data", "valid dictionary"]),
    # --set syntax and unknown keys
    (["model.g.foo=1"], ["--set model.g.foo", "unknown key 'foo' in model.g", "embed_dim"]),
    (["trainer.lr=1"], ["--set trainer.lr", "unknown key 'trainer' in the top level"]),
    (["optim.batch_d"], ["--set 'optim.batch_d'", "expected key=value"]),
    (["=3"], ["the key before '=' is empty"]),
    (["model.g.depths.x=1"], ["--set model.g.depths.x", "'depths' is not a section"]),
]


@pytest.mark.parametrize("overrides,expect", BAD_OVERRIDES, ids=[" ".join(o) for o, _ in BAD_OVERRIDES])
def test_bad_override_names_the_field(overrides, expect):
    with pytest.raises(ConfigError) as e:
        load_config("digits-tiny", overrides)
    for s in expect:
        assert s in str(e.value), f"{s!r} not in {str(e.value)!r}"


# (YAML text of a file, substrings of the error); "{path}" is replaced by the file's path
BAD_FILES = [
    ("base: digits-tiny\ntrainer: {lr: 1}\n", ["trainer", "unknown key 'trainer'"]),
    ("base: digits-tiny\noptim: {lr: 1.0e-4}\n", ["optim.lr:", "unknown key 'lr'"]),
    ("base: digits-tiny\nmodel:\n  g: {embed_dims: 64}\n", ["model.g.embed_dims", "unknown key"]),
    ("base: digits-tiny\noptim: {lr_g: 1e-4\n", ["{path} is not valid YAML at line", "fix the syntax"]),
    ("- data\n- model\n", ["{path} must hold a mapping", "not list"]),
    ("base: no-such-preset\n", ["unknown preset 'no-such-preset'", "digits-tiny"]),
    ("base: {path}\n", ["'base' chain loops back to itself"]),
    ("base: digits-tiny\ndata: {resolution: 32}\n", ["model.g.bottom=4", "data.resolution=32"]),
]


@pytest.mark.parametrize("text,expect", BAD_FILES, ids=[str(i) for i in range(len(BAD_FILES))])
def test_bad_yaml_file_names_the_problem(tmp_path, text, expect):
    path = tmp_path / "exp.yaml"
    path.write_text(text.replace("{path}", str(path)))
    with pytest.raises(ConfigError) as e:
        load_config(str(path))
    for s in expect:
        s = s.replace("{path}", str(path))
        assert s in str(e.value), f"{s!r} not in {str(e.value)!r}"


def test_unknown_preset_and_missing_file():
    with pytest.raises(ConfigError, match=r"unknown preset 'cifar100'; choose one of .*digits-tiny"):
        load_config("cifar100")
    with pytest.raises(ConfigError, match=r"config file nowhere/x.yaml does not exist"):
        load_config("nowhere/x.yaml")


# ----------------------------------------------------------------------------------- good


@pytest.mark.parametrize("name", C.preset_names())
def test_every_preset_loads_and_is_consistent(name):
    cfg = load_config(name)
    assert cfg.preset == name and cfg.name
    if cfg.model.g.arch == "transgan":  # each stage doubles the side: bottom x 2^(stages-1)
        assert cfg.model.g.bottom * 2 ** (len(cfg.model.g.depths) - 1) == cfg.data.resolution
    assert C.from_dict(cfg.model_dump(mode="json")) == cfg  # the dump re-validates to the same config


def test_presets_hold_the_paper_settings():
    assert len(C.preset_names()) >= 8
    s = load_config("cifar10-s")
    assert (s.data.dataset, s.data.resolution, s.optim.batch_d, s.optim.batch_g, s.optim.n_critic) == (
        "cifar10",
        32,
        32,
        64,
        5,
    )
    stl = load_config("stl10-xl")  # base: cifar10-s, deep-merged
    assert (stl.data.resolution, stl.model.g.bottom, len(stl.model.g.depths)) == (48, 12, 3)  # stages: 12, 24, 48 px
    assert stl.model.g.locality.enabled and stl.model.mtct.enabled  # inherited from cifar10-s
    assert load_config("digits-tiny").data.hflip is False


def test_overrides_parse_yaml_values():
    cfg = load_config(
        "digits-tiny",
        [
            "model.g.depths=[2,2,2]",
            "optim.lr_g=3e-4",
            "data.channels=3",
            "train.precision=fp32",
            "model.g.locality.schedule=[[0, 2], [5, 3]]",
            "tracking.uri=null",
            "name=2024",
            "tracking.experiment=123",
        ],
    )
    assert cfg.model.g.depths == [2, 2, 2] and cfg.optim.lr_g == pytest.approx(3e-4)
    assert cfg.data.channels == 3 and cfg.train.precision == "fp32"
    assert cfg.model.g.locality.schedule == [(0, 2), (5, 3)] and cfg.tracking.uri is None
    # a text field keeps the text even when YAML would read a number (was: "name: Input should be a valid string")
    assert cfg.name == "2024" and cfg.tracking.experiment == "123"


def test_base_inheritance_and_relative_base(tmp_path):
    (tmp_path / "parent.yaml").write_text(
        "base: digits-tiny\nname: parent\noptim: {lr_g: 5.0e-4}\nmodel:\n  g: {heads: 2}\n"
    )
    (tmp_path / "child.yaml").write_text("base: parent.yaml\ntrain: {kimg: 3}\n")
    child = load_config(str(tmp_path / "child.yaml"), ["seed=7"])
    tiny = load_config("digits-tiny")
    assert child.preset == "child" and child.name == "parent" and child.seed == 7
    assert child.optim.lr_g == 5e-4 and child.train.kimg == 3 and child.model.g.heads == 2
    assert (
        child.model.g.embed_dim == tiny.model.g.embed_dim and child.model.g.depths == tiny.model.g.depths
    )  # siblings survive the deep merge
    assert child.optim.batch_d == tiny.optim.batch_d and child.data == tiny.data


# --------------------------------------------------------------------------------- hashes


def test_config_hash_changes_with_any_field_dynamics_hash_only_with_dynamics():
    base = load_config("digits-tiny")
    h, dh = C.config_hash(base), C.dynamics_hash(base)
    assert len(h) == 16 and h == C.config_hash(load_config("digits-tiny"))
    for o in (
        ["train.kimg=1"],
        ["train.log_kimg=1"],
        ["train.checkpoint_kimg=7"],
        ["train.grid_kimg=3"],
        ["eval.n_fake=100"],
        ["name=other"],
        ["data.loader_workers=2"],
    ):
        cfg = load_config("digits-tiny", o)
        assert C.config_hash(cfg) != h, o
        assert C.dynamics_hash(cfg) == dh, o
    for o in (["optim.lr_g=3e-4"], ["seed=1"], ["optim.batch_d=16"], ["data.upscale=nearest"], ["model.g.heads=2"]):
        cfg = load_config("digits-tiny", o)
        assert C.config_hash(cfg) != h and C.dynamics_hash(cfg) != dh, o


@pytest.mark.slow
def test_config_hash_stable_across_processes():
    here = {n: (C.config_hash(load_config(n)), C.dynamics_hash(load_config(n))) for n in ("digits-tiny", "cifar10-s")}
    code = (
        "import json; from transgan_lab.platform import config as C\n"
        "print(json.dumps({n: [C.config_hash(C.load_config(n)), C.dynamics_hash(C.load_config(n))] "
        "for n in ('digits-tiny', 'cifar10-s')}))"
    )
    for seed in ("1", "12345"):  # a different str-hash seed must not matter
        env = dict(os.environ, PYTHONHASHSEED=seed)
        out = subprocess.run(
            [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True
        )
        assert {k: tuple(v) for k, v in json.loads(out.stdout).items()} == here


# ------------------------------------------------------------------------------------ CLI


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "transgan_lab", *args], cwd=REPO, capture_output=True, text=True, timeout=120
    )


@pytest.mark.slow
def test_cli_config_show_prints_resolved_values():
    r = _cli("config", "show", "digits-tiny", "--set", "optim.lr_g=3e-4", "--set", "model.g.depths=[2,2,2]")
    assert r.returncode == 0, r.stderr
    shown = yaml.safe_load(r.stdout)
    assert shown["optim"]["lr_g"] == pytest.approx(3e-4) and shown["model"]["g"]["depths"] == [2, 2, 2]
    assert shown["data"]["resolution"] == 16 and shown["preset"] == "digits-tiny"
    cfg = load_config("digits-tiny", ["optim.lr_g=3e-4", "model.g.depths=[2,2,2]"])
    assert f"# config_hash: {C.config_hash(cfg)}  dynamics_hash: {C.dynamics_hash(cfg)}" in r.stdout
    r = _cli("config", "show", "digits-tiny", "--json", "--flat")
    out = json.loads(r.stdout)
    preset = load_config("digits-tiny")
    assert out["config"]["model.g.embed_dim"] == preset.model.g.embed_dim and out["config_hash"] == C.config_hash(
        preset
    )


@pytest.mark.slow
def test_cli_bad_value_exits_2_without_traceback():
    r = _cli("config", "show", "digits-tiny", "--set", "model.g.bottom=5")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.startswith("error: invalid config: model.g.bottom=5") and "set model.g.bottom=4" in r.stderr
    assert "Traceback" not in r.stderr
    r = _cli("config", "show", "no-such-preset")
    assert r.returncode == 2 and "unknown preset 'no-such-preset'" in r.stderr and "Traceback" not in r.stderr
