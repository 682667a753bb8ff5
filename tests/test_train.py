"""The training engine on CPU: exact resume, crash safety, worker invariance, NaN rollback, CLI."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from conftest import free_port

from transgan_lab.platform.config import load_config
from transgan_lab.trainers import checkpoint as ckpt
from transgan_lab.trainers.schedule import total_steps
from transgan_lab.trainers.train import train

REPO = Path(__file__).resolve().parents[1]


# A very small digits run: 16 images per D step, 2 D steps per G step -> 32 images per step.
SMALL = [
    "model.g.embed_dim=64",
    "model.g.depths=[1,1,1]",
    "model.g.latent_dim=16",
    "model.d.embed_dim=32",
    "model.d.depth=1",
    "optim.batch_d=16",
    "optim.batch_g=16",
    "optim.n_critic=2",
    "train.precision=fp32",
    "train.log_kimg=0.064",
    "train.checkpoint_kimg=0.096",
    "train.grid_kimg=0",
    "eval.n_fake=64",
    "eval.batch=32",
    "train.deterministic=true",
]


def small_cfg(steps: int, *extra: str):
    kimg = steps * 32 / 1000
    return load_config("digits-tiny", SMALL + [f"train.kimg={kimg}", *extra])


class ListReporter:
    def __init__(self):
        self.calls = []

    def report(self, metrics, checkpoint_dir=None, files=None):
        self.calls.append((dict(metrics), checkpoint_dir, dict(files or {})))


def _states_equal(a: dict, b: dict, path: str = "") -> list[str]:
    """Names of differing leaves of two nested state dicts (tensors compared bitwise)."""
    diffs = []
    if isinstance(a, dict):
        if set(a) != set(b):
            return [f"{path}: keys differ"]
        for k in a:
            diffs += _states_equal(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        if len(a) != len(b):
            return [f"{path}: lengths differ"]
        for i, (x, y) in enumerate(zip(a, b)):
            diffs += _states_equal(x, y, f"{path}[{i}]")
    elif isinstance(a, torch.Tensor):
        if not (a.shape == b.shape and torch.equal(a, b)):
            diffs.append(path)
    elif a != b:
        diffs.append(path)
    return diffs


def _final_state(run: Path) -> dict:
    found, _ = ckpt.latest_valid(run / "checkpoints")
    _, state = ckpt.load_checkpoint(found, names=["G", "D", "G_ema", "opt_G", "opt_D", "data"])
    return state


def test_total_steps_and_report_schedule(tmp_path):
    cfg = small_cfg(6)
    assert total_steps(cfg) == 6
    rep = ListReporter()
    result = train(cfg, rep, out_dir=tmp_path)
    assert result["status"] == "finished" and result["step"] == 6 and result["nimg"] == 6 * 32
    steps = [m["step"] for m, _, _ in rep.calls]
    assert steps == [2, 3, 4, 6]  # log every 0.064 kimg (2 steps), checkpoint every 0.096 (3), and the end
    last, ckpt_dir, files = rep.calls[-1]
    assert ckpt_dir and Path(ckpt_dir).name == "ckpt-00000006"
    assert "grid" in files and Path(files["grid"]).exists()
    for key in (
        "loss_d",
        "loss_g",
        "loss_gp",
        "grad_norm_d",
        "grad_norm_g",
        "ema_beta",
        "img_per_s",
        "sec_per_kimg",
        "peak_mem_mb",
        "digits_fid",
        "digits_is",
    ):
        assert key in last, key
    assert last["img_per_s"] > 0 and 0 < last["ema_beta"] < 1
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines] == steps
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["status"] == "finished" and status["kimg"] == pytest.approx(0.192)
    # keep_last (3) newest plus step 0
    assert [p.name for p in ckpt.list_checkpoints(tmp_path / "checkpoints")] == [
        "ckpt-00000000",
        "ckpt-00000003",
        "ckpt-00000006",
    ]


_RESUME_SCRIPT = textwrap.dedent(
    """
    import sys, json
    from transgan_lab.platform.config import from_dict
    from transgan_lab.trainers.train import train
    cfg = from_dict(json.loads(sys.argv[1]))
    result = train(cfg, None, out_dir=sys.argv[2], resume=sys.argv[3] if len(sys.argv) > 3 else None)
    print(json.dumps(result))
    """
)


def _run_script(
    cfg, out: Path, resume: Path | None = None, env_extra: dict | None = None
) -> subprocess.CompletedProcess:
    args = [sys.executable, "-c", _RESUME_SCRIPT, json.dumps(cfg.model_dump(mode="json")), str(out)]
    if resume is not None:
        args.append(str(resume))
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env_extra or {})}
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=600)


@pytest.mark.slow
@pytest.mark.parametrize("share", [False, True])
def test_resume_in_fresh_process_is_bit_identical(tmp_path, share):
    straight, split = tmp_path / "straight", tmp_path / "split"
    full = small_cfg(6, "train.checkpoint_kimg=0.096", f"optim.share_fakes={share}")
    half = small_cfg(3, "train.checkpoint_kimg=0.096", f"optim.share_fakes={share}")
    r = _run_script(full, straight)
    assert r.returncode == 0, r.stderr
    r = _run_script(half, split)
    assert r.returncode == 0, r.stderr
    # A fresh process continues from the step-3 checkpoint to step 6 (longer kimg is allowed).
    r = _run_script(full, split, resume=split)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1])["resumed_from"].endswith("ckpt-00000003")
    a, b = _final_state(straight), _final_state(split)
    assert _states_equal(a, b) == []


_KILL_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys, json, torch
    from transgan_lab.trainers import checkpoint as ckpt
    from transgan_lab.platform.config import from_dict
    from transgan_lab.trainers.train import train
    real_save = torch.save
    def dying_save(obj, f, *a, **k):
        # SIGKILL this process in the middle of writing the step-6 checkpoint.
        if ".tmp-ckpt-00000006" in getattr(f, "name", ""):
            f.write(b"partial bytes")
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        return real_save(obj, f, *a, **k)
    ckpt.torch.save = dying_save
    cfg = from_dict(json.loads(sys.argv[1]))
    train(cfg, None, out_dir=sys.argv[2])
    """
)


@pytest.mark.slow
def test_sigkill_during_checkpoint_keeps_previous_and_resume_works(tmp_path):
    cfg = small_cfg(9, "train.checkpoint_kimg=0.096")
    run = tmp_path / "run"
    p = subprocess.run(
        [sys.executable, "-c", _KILL_SCRIPT, json.dumps(cfg.model_dump(mode="json")), str(run)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert p.returncode == -signal.SIGKILL, p.stderr
    names = [c.name for c in ckpt.list_checkpoints(run / "checkpoints")]
    assert names[-1] == "ckpt-00000003"  # the interrupted step-6 checkpoint never became visible
    assert list((run / "checkpoints").glob(".tmp-ckpt-00000006-*")), "the partial write stayed in its temp dir"
    found, manifest = ckpt.latest_valid(run)
    assert manifest["step"] == 3
    result = train(cfg, None, out_dir=run, resume=run)
    assert result["status"] == "finished" and result["step"] == 9
    assert not list((run / "checkpoints").glob(".tmp-*")), "stale temp dirs are cleaned"


def test_flipped_byte_falls_back_to_previous_checkpoint(tmp_path):
    cfg = small_cfg(6, "train.checkpoint_kimg=0.096")
    train(cfg, None, out_dir=tmp_path)
    newest = tmp_path / "checkpoints" / "ckpt-00000006" / "G.pt"
    raw = bytearray(newest.read_bytes())
    raw[-10] ^= 0xFF
    newest.write_bytes(bytes(raw))
    with pytest.warns(UserWarning, match="damaged"):
        result = train(small_cfg(9, "train.checkpoint_kimg=0.096"), None, out_dir=tmp_path, resume=tmp_path)
    assert result["resumed_from"].endswith("ckpt-00000003") and result["step"] == 9


def test_changed_dynamics_refused_unless_allowed(tmp_path):
    train(small_cfg(3, "optim.lr_g=2e-4"), None, out_dir=tmp_path)
    changed = small_cfg(6, "optim.lr_g=3e-4")
    with pytest.raises(ckpt.CheckpointError, match=r"optim.lr_g: 0.0002 -> 0.0003.*--allow-config-change"):
        train(changed, None, out_dir=tmp_path, resume=tmp_path)
    result = train(changed, None, out_dir=tmp_path, resume=tmp_path, allow_config_change=True)
    assert result["config_changes"] == [{"field": "optim.lr_g", "old": 0.0002, "new": 0.0003}]
    assert json.loads((tmp_path / "config_changes.json").read_text())[0]["field"] == "optim.lr_g"


def test_checkpoint_from_before_a_field_existed_resumes_as_its_default(tmp_path):
    # A checkpoint written by an older version lacks the fields added since. It ran with their
    # defaults, so resuming it under the default is no change; under another value it is one.
    train(small_cfg(3), None, out_dir=tmp_path)
    newest = ckpt.list_checkpoints(tmp_path / "checkpoints")[-1]
    manifest = json.loads((newest / ckpt.MANIFEST).read_text())
    assert manifest["config"]["optim"].pop("lr_decay") == "none"  # the preset runs at the schema default
    assert manifest["config"]["model"].pop("mtct") == {"enabled": False, "weight": 50.0}
    (newest / ckpt.MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ckpt.CheckpointError, match=r"optim.lr_decay: 'none' -> 'linear'"):
        train(small_cfg(6, "optim.lr_decay=linear"), None, out_dir=tmp_path, resume=tmp_path)
    result = train(small_cfg(6), None, out_dir=tmp_path, resume=tmp_path)
    assert result["resumed_from"].endswith(newest.name) and result["step"] == 6
    assert result["config_changes"] == []


def test_resume_with_more_images_per_step_still_trains_to_train_kimg(tmp_path, capsys):
    # 3 steps x 32 images, then the run goes on at n_critic 4 (64 images per step) to 192 images.
    # Counting the end in steps (192 / 64 = 3 = the steps done) would stop at once at 96 images.
    from transgan_lab.platform.cli import main

    train(small_cfg(3), None, out_dir=tmp_path)
    sets = SMALL + ["train.kimg=0.192", "optim.n_critic=4"]
    # --dry-run announces what the resume will do: the steps left, not the run's length from zero
    argv = ["train", "digits-tiny", "--resume", str(tmp_path), "--allow-config-change", "--dry-run"]
    assert main(argv + [a for s in sets for a in ("--set", s)]) == 0
    assert "# resumes ckpt-00000003 at step 3 (0.096 kimg); 2 steps to 0.192 kimg" in capsys.readouterr().out
    more = load_config("digits-tiny", sets)
    result = train(more, None, out_dir=tmp_path, resume=tmp_path, allow_config_change=True)
    assert (result["step"], result["nimg"]) == (5, 96 + 2 * 64)


def test_injected_nan_rolls_back_then_continues(tmp_path):
    cfg = small_cfg(8, "train.checkpoint_kimg=0.064", "train.log_kimg=0.064")
    poisoned = []

    def poison_once(step, models):
        if step == 5 and not poisoned:
            poisoned.append(step)
            with torch.no_grad():
                next(models["G"].parameters()).fill_(float("nan"))

    rep = ListReporter()
    result = train(cfg, rep, out_dir=tmp_path, on_step=poison_once)
    assert result["status"] == "finished" and result["rollbacks"] == 1 and result["step"] == 8
    assert all(torch.isfinite(p).all() for p in _final_state(tmp_path)["G"].values())
    # the report at step 6 (NaN) was replaced by a rollback to step 4 and training went on
    assert [m["step"] for m, _, _ in rep.calls] == [2, 4, 6, 8]
    assert rep.calls[-1][0]["rollbacks"] == 1


def test_repeated_nan_ends_with_diverged_status(tmp_path):
    cfg = small_cfg(8, "train.checkpoint_kimg=0.064", "train.nan_retries=2")

    def poison_always(step, models):
        if step >= 3:
            with torch.no_grad():
                next(models["G"].parameters()).fill_(float("nan"))

    result = train(cfg, None, out_dir=tmp_path, on_step=poison_always)
    assert result["status"] == "diverged" and result["rollbacks"] == 3
    assert "train.nan_retries=2" in result["message"]
    assert json.loads((tmp_path / "status.json").read_text())["status"] == "diverged"
    found, manifest = ckpt.latest_valid(tmp_path)
    assert manifest["step"] == 2  # no checkpoint of a diverged state was ever written


_DDP_SCRIPT = textwrap.dedent(
    """
    import json, os, sys, torch, torch.distributed as dist
    rank, world, port, cfg_json, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
    torch.set_num_threads(1)
    if world > 1:
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    from transgan_lab.platform.config import from_dict
    from transgan_lab.trainers.train import train
    class R:
        def __init__(self): self.rows = []
        def report(self, metrics, checkpoint_dir=None, files=None): self.rows.append(metrics)
    r = R()
    train(from_dict(json.loads(cfg_json)), r, out_dir=os.path.join(out, f"rank{rank}"), progress=False)
    if rank == 0:
        print(json.dumps(r.rows))
    if world > 1:
        dist.destroy_process_group()
    """
)


@pytest.mark.slow
def test_one_vs_two_workers_same_dynamics(tmp_path):
    """Same global batch on 1 and 2 gloo processes: losses and weights agree (augmentation off,
    because each rank draws its own augmentation; latents and GP mixing are global)."""
    cfg = small_cfg(
        4, "augment.policy=[]", "model.mtct.enabled=true", "train.log_kimg=0.032", "train.checkpoint_kimg=0.128"
    )
    cfg_json = json.dumps(cfg.model_dump(mode="json"))
    one = subprocess.run(
        [sys.executable, "-c", _DDP_SCRIPT, "0", "1", "0", cfg_json, str(tmp_path / "w1")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert one.returncode == 0, one.stderr
    port = str(free_port())
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _DDP_SCRIPT, str(r), "2", port, cfg_json, str(tmp_path / "w2")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in range(2)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs[0][1] + outs[1][1]
    rows1 = json.loads(one.stdout.strip().splitlines()[-1])
    rows2 = json.loads(outs[0][0].strip().splitlines()[-1])
    assert [r["step"] for r in rows1] == [r["step"] for r in rows2] == [1, 2, 3, 4]
    # Stated tolerance: float reduction order differs (per-rank means, all-reduce), and the drift
    # term squares a batch mean, which per-rank micro-batches see piecewise.
    for a, b in zip(rows1, rows2):
        for key in ("loss_d", "loss_g", "loss_gp"):
            assert a[key] == pytest.approx(b[key], rel=2e-3, abs=2e-4), (a["step"], key)
    s1 = _final_state(tmp_path / "w1" / "rank0")
    s2 = _final_state(tmp_path / "w2" / "rank0")
    for name in ("G", "D", "G_ema"):
        for k in s1[name]:
            assert torch.allclose(s1[name][k], s2[name][k], rtol=1e-3, atol=1e-4), (name, k)


def test_intervals_are_in_kimg_whatever_n_critic_or_batch():
    from transgan_lab.trainers.schedule import due_events

    for n_critic, batch in ((1, 16), (2, 16), (4, 64), (5, 32)):
        cfg = load_config(
            "digits-tiny",
            [
                f"optim.n_critic={n_critic}",
                f"optim.batch_d={batch}",
                f"optim.batch_g={batch}",
                "train.log_kimg=0.64",
                "train.eval_kimg=1.28",
                "train.grid_kimg=0",
                "train.checkpoint_kimg=2.56",
            ],
        )
        per_step = n_critic * batch
        fired: dict[str, list[int]] = {}
        for step in range(1, 4000 // per_step + 1):
            for e in due_events(cfg, (step - 1) * per_step, step * per_step, last=False):
                fired.setdefault(e, []).append(step * per_step // 640)  # in units of 0.64 kimg
        # the first step at or past each multiple; grid_kimg=0 means "at the end only"
        assert fired["log"] == [1, 2, 3, 4, 5, 6], (n_critic, batch)
        assert fired["eval"] == [2, 4, 6] and fired["checkpoint"] == [4] and "grid" not in fired
    assert due_events(cfg, 0, 1, last=True) == {"log", "eval", "grid", "checkpoint"}


def test_lazy_regularisation_penalises_every_kth_d_update(tmp_path):
    # n_critic 2, a report every step: step s holds D updates 2(s-1) and 2(s-1)+1; with reg_every 4
    # only updates 0 and 4 (steps 1 and 3) compute the penalty, logged x4 (its mean over updates).
    cfg = small_cfg(4, "loss.reg_every=4", "train.log_kimg=0.032")
    rep = ListReporter()
    train(cfg, rep, out_dir=tmp_path)
    gp = [m["loss_gp"] for m, _, _ in rep.calls]
    assert gp[0] > 0 and gp[1] == 0 and gp[2] > 0 and gp[3] == 0
    assert all(m["g_updates"] == m["step"] for m, _, _ in rep.calls)
    assert [m["train_s"] for m, _, _ in rep.calls] == sorted(m["train_s"] for m, _, _ in rep.calls)


def test_short_run_warning_counts_generator_updates():
    from transgan_lab.trainers.schedule import MIN_G_UPDATES, short_run_warning, total_steps

    preset = load_config("digits-tiny")
    assert total_steps(preset) >= MIN_G_UPDATES and short_run_warning(preset) is None
    per = preset.optim.n_critic * preset.optim.batch_d
    short = load_config("digits-tiny", [f"train.kimg={(MIN_G_UPDATES - 1) * per / 1000}"])
    msg = short_run_warning(short)
    assert (
        f"only {MIN_G_UPDATES - 1} generator updates" in msg and f"train.kimg >= {MIN_G_UPDATES * per / 1000:g}" in msg
    )
    assert short_run_warning(load_config("digits-tiny", [f"train.kimg={MIN_G_UPDATES * per / 1000}"])) is None


def test_linear_lr_decay_falls_to_zero_at_the_end(tmp_path):
    # Reports after each of 4 steps carry the rates the step used: G updates done / 4 of the way down.
    for decay, expected in (("none", [1.0, 1.0, 1.0, 1.0]), ("linear", [1.0, 0.75, 0.5, 0.25])):
        cfg = small_cfg(4, f"optim.lr_decay={decay}", "train.log_kimg=0.032", "optim.lr_d=3e-4")
        rep = ListReporter()
        train(cfg, rep, out_dir=tmp_path / decay)
        assert [m["lr_g"] / cfg.optim.lr_g for m, _, _ in rep.calls] == pytest.approx(expected)
        assert [m["lr_d"] / 3e-4 for m, _, _ in rep.calls] == pytest.approx(expected)


def test_shared_fakes_save_one_generator_pass_per_step(tmp_path):
    from transgan_lab.trainers.trainer import Trainer

    passes = {}
    for share in (False, True):
        cfg = small_cfg(3, f"optim.share_fakes={share}")  # n_critic 2
        t = Trainer(cfg, out_dir=tmp_path / str(share), device="cpu")
        calls = []
        t.G.register_forward_hook(lambda m, args, out: calls.append(torch.is_grad_enabled()))
        acc: dict = {}
        for _ in range(3):
            t.step(acc)
        passes[share] = calls
        assert all(torch.isfinite(torch.as_tensor(v)).all() for v in acc.values())
    assert passes[False] == [False, False, True] * 3  # two no-grad passes for D, one for the G update
    assert passes[True] == [False, True] * 3  # the G update's pass also feeds the last D update
    with pytest.raises(Exception, match="share_fakes needs optim.accum=1"):
        small_cfg(3, "optim.share_fakes=true", "optim.accum=2")


@pytest.mark.slow
def test_cli_train_digits(tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [
        sys.executable,
        "-m",
        "transgan_lab",
        "train",
        "digits-tiny",
        "--kimg",
        "0.768",
        "--out",
        str(tmp_path),
        "--no-tracking",
        "--set",
        "train.log_kimg=1.024",
        "--set",
        "train.checkpoint_kimg=1.536",
        "--set",
        "train.grid_kimg=1.536",
        "--set",
        "eval.n_fake=200",
    ]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    run = next(tmp_path.glob("digits-tiny-*"))
    o = load_config("digits-tiny").optim
    steps = 768 // (o.n_critic * o.batch_d)  # one step shows D n_critic batches
    assert f"finished: 0.8 kimg in {steps} steps" in p.stdout
    assert f"only {steps} generator updates" in p.stderr and "train.kimg >= " in p.stderr  # short-run warning
    assert len(list((run / "grids").glob("grid-*.png"))) >= 1
    assert ckpt.latest_valid(run)[1]["step"] == steps
    last = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["img_per_s"] > 0 and last["sec_per_kimg"] > 0 and last["digits_fid"] > 0
    # `eval` prints each IS-type score's parts under it: the classifier's labels of the n samples
    ev = [sys.executable, "-m", "transgan_lab", "eval", str(run), "--n", "200", "--metrics", "digits_is,digits_fid"]
    e = subprocess.run(ev, capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert e.returncode == 0, e.stderr
    lines = e.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if line.split()[0] == "digits_is")
    parts_line = r" +labels per class ((?:\d+ ){9}\d+) \((\d+) of 10 classes\); H\(y\) .* of 2\.303, .*"
    parts = re.fullmatch(parts_line, lines[at + 1])
    assert parts and sum(map(int, parts[1].split())) == 200, lines
    assert int(parts[2]) == sum(int(c) > 0 for c in parts[1].split())
    assert lines[at + 2].split()[0] == "digits_fid"  # an FD-type score has no parts line
    # The same command again is refused (it would overwrite), with the fix named.
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert again.returncode == 2 and "--resume" in again.stderr and "Traceback" not in again.stderr


def _saved_activation_bytes(model: torch.nn.Module, x: torch.Tensor) -> int:
    """Bytes autograd keeps for backward over one forward of ``model`` (parameters not counted)."""
    params = {p.data_ptr() for p in model.parameters()}
    total = 0

    def pack(t):
        nonlocal total
        if t.data_ptr() not in params:
            total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(x).sum()
    return total


def test_activation_checkpointing_same_training_less_saved_memory(tmp_path):
    """train.activation_checkpointing recomputes blocks in backward: the weights after several full
    D+G steps (gradient penalty's double backward included, noise injection replayed) equal the
    plain run's, and the activations kept for backward shrink."""
    extra = ["model.g.noise_injection=true", "model.d.noise_injection=true", "model.g.rel_pos_bias=true"]
    train(small_cfg(3, *extra), None, out_dir=tmp_path / "plain")
    train(small_cfg(3, *extra, "train.activation_checkpointing=true"), None, out_dir=tmp_path / "ckpt")
    a, b = _final_state(tmp_path / "plain"), _final_state(tmp_path / "ckpt")
    for name in ("G", "D", "G_ema"):
        for k in a[name]:
            assert torch.allclose(a[name][k], b[name][k], rtol=1e-5, atol=1e-6), (name, k)

    from transgan_lab.trainers.models import build_discriminator, set_activation_checkpointing

    cfg = load_config("digits-tiny", ["model.d.pixel_clusters=0"])  # D(x): the blocks' memory, no cluster input
    D = build_discriminator(cfg)
    x = torch.randn(8, 1, 16, 16, requires_grad=True)
    plain = _saved_activation_bytes(D, x)
    assert set_activation_checkpointing(D) == cfg.model.d.depth
    recomputed = _saved_activation_bytes(D, x)
    print(f"D saved activations: {plain / 2**10:.0f} KiB plain, {recomputed / 2**10:.0f} KiB with checkpointing")
    assert recomputed < 0.5 * plain
