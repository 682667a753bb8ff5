"""train.cuda_graphs: the step replayed from static buffers (trainers/graphed.py).

On a CPU the graphed step runs with ``Uncaptured`` in place of the CUDA graph: the same buffers,
draws, keys, warm-up counts, invalidation and statistics, with the body run at each "replay"; it
must give bit-for-bit the eager step's weights, optimizer state and statistics (fp32, same kernels
in the same order, the draws made from the same generators). The tests marked ``gpu`` capture real
CUDA graphs and are skipped without a device (bench/gpu_device_check.sh runs them on a card).

This file imports only torch, trainers and bench/ (no pydantic, ray or mlflow), so it also runs on
the bare GPU machine (with ``--noconftest``).
"""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from gpu_bench import load_cfg  # bench/ is on pytest's pythonpath (pyproject.toml)
from train_step import new_trainer

from transgan_lab.trainers.graphed import GraphedStep, Uncaptured
from transgan_lab.trainers.rng import rng_state, set_rng_state

# digits-tiny shrunk to the smoke runs' model (platform/experiments.py TINY_MODEL), 2 D updates per step
TINY = {
    "model.g.embed_dim": 64,
    "model.g.depths": [1, 1, 1],
    "model.g.heads": 2,
    "model.d.embed_dim": 32,
    "model.d.depth": 1,
    "model.d.heads": 2,
    "optim.batch_d": 16,
    "optim.batch_g": 16,
    "optim.n_critic": 2,
    "train.precision": "fp32",
}
LOCALITY = {
    "model.g.locality.enabled": True,
    "model.g.locality.schedule": [[0, 1], [1, 2]],  # width 1 in epoch 0, 2 from epoch 1 on
    "model.g.locality.off_epoch": 5,
}


@pytest.fixture(autouse=True)
def one_cpu_thread():
    """Bit-for-bit needs one reduction order: with several threads the BLAS may split a matmul
    differently from one call to the next when the machine is loaded (seen once in the full suite:
    d_real off by one float32 ulp at step 0), so the CPU comparisons run on one thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


CUDA = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA device: captures and replays the step with torch.cuda.graph"
)


def make(tmp_path, name: str, device: str = "cpu", **overrides):
    cfg = load_cfg("digits-tiny", **{**TINY, **overrides})
    t = new_trainer(cfg, torch.device(device), tmp_path / name)
    t.own_rng = rng_state()  # augmentation draws from the global streams: each trainer keeps its own (run())
    return t


def graphed(t, **kw) -> GraphedStep:
    """Put a graphed step with these settings into trainer t (as train.cuda_graphs does on a card)."""
    t.graphed = GraphedStep(t, **kw)
    return t.graphed


def weights(t) -> dict:
    """Everything a step writes: G, D, G_ema and both optimizers' state, cloned."""
    out = {f"G.{k}": v for k, v in t.G.state_dict().items()}
    out.update({f"D.{k}": v for k, v in t.D.state_dict().items()})
    out.update({f"G_ema.{k}": v for k, v in t.G_ema.state_dict().items()})
    for name, opt in (("opt_G", t.opt_G), ("opt_D", t.opt_D)):
        for i, state in enumerate(opt.state.values()):
            out.update({f"{name}.{i}.{k}": torch.as_tensor(v) for k, v in state.items()})
    return {k: v.detach().float().cpu().clone() for k, v in out.items()}


def run(t, steps: int) -> list[dict]:
    """Step t on its own global random streams; each step's loss statistics (as floats)."""
    set_rng_state(t.own_rng)
    per_step = []
    for _ in range(steps):
        acc: dict = {}
        t.step(acc)
        per_step.append({k: float(v) for k, v in acc.items()})
    t.own_rng = rng_state()
    return per_step


def differing(a: dict, b: dict) -> list[str]:
    assert a.keys() == b.keys()
    return [k for k in a if not torch.equal(a[k], b[k])]


# ------------------------------------------------------------------------------------------- CPU


@pytest.mark.parametrize(
    "overrides",
    [
        {},  # digits-tiny: shared fakes (the G update's samples are the last D update's fakes)
        {"optim.share_fakes": False},
        {"optim.share_fakes": False, "optim.accum": 2},
        {"optim.lr_decay": "linear", "train.kimg": 0.128},  # 4 steps: the lr falls by a quarter per step
        {"optim.n_critic": 3, "loss.reg_every": 2},  # the penalty cadence alternates: two graphs
        LOCALITY,
    ],
    ids=["shared-fakes", "own-fakes", "accum2", "lr-decay", "lazy-reg", "locality"],
)
def test_static_buffer_step_equals_the_eager_step(tmp_path, overrides):
    eager = make(tmp_path, "eager", **overrides)
    static = make(tmp_path, "static", **overrides)
    g = graphed(static, graph=Uncaptured, warmup_steps=1)
    assert differing(weights(eager), weights(static)) == []
    for step in range(4):
        assert run(static, 1) == run(eager, 1), f"loss statistics differ at step {step}"
        assert differing(weights(eager), weights(static)) == [], f"step {step}"
        assert static.last_beta == eager.last_beta and static.state.nimg == eager.state.nimg
        # the tensors the graph reads hold the values the eager step used
        assert float(g.lr_g) == pytest.approx(eager.opt_G.param_groups[0]["lr"], rel=1e-6)
        assert float(g.lr_d) == pytest.approx(eager.opt_D.param_groups[0]["lr"], rel=1e-6)
        assert float(g.ema_weight) == pytest.approx(1 - eager.last_beta, rel=1e-6)
    # the optimizers keep float lrs and capturable=False outside a capture (checkpoints and
    # metrics read them)
    for opt in (static.opt_G, static.opt_D):
        assert all(isinstance(gr["lr"], float) and not gr["capturable"] for gr in opt.param_groups)
    keys = 2 if "loss.reg_every" in overrides else 1
    assert g.captures == keys and g.replays == 4 - keys  # one warm-up step per key, then its graph


def test_locality_width_change_makes_a_new_graph_and_drops_the_old(tmp_path):
    t = make(tmp_path, "t", **LOCALITY)
    g = graphed(t, graph=Uncaptured, warmup_steps=1)
    run(t, 2)
    assert list(g.graphs) == [(1, (True, True))] and g.replays == 1
    t.stream.position = t.stream.n  # epoch 1: width 2
    run(t, 2)
    assert list(g.graphs) == [(2, (True, True))] and (g.captures, g.replays) == (2, 2)


def test_cuda_graphs_on_a_cpu_warn_once_and_step_eagerly(tmp_path):
    eager = make(tmp_path, "eager")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t = make(tmp_path, "t", **{"train.cuda_graphs": True})
        run(t, 2)
    msgs = [str(w.message) for w in caught if "train.cuda_graphs" in str(w.message)]
    assert msgs == [
        "train.cuda_graphs: CUDA graphs need a CUDA device and this run is on cpu; the training step runs eagerly"
    ]
    assert t.graphed is None and "cpu" in t.cuda_graphs_fallback
    run(eager, 2)
    assert differing(weights(eager), weights(t)) == []


class FailingCapture:
    def __init__(self, body, **_):
        raise RuntimeError("operation not permitted when stream is capturing\nsecond line")


def test_a_failed_capture_warns_once_and_the_run_goes_on_eagerly(tmp_path):
    eager = make(tmp_path, "eager")
    t = make(tmp_path, "t")
    g = graphed(t, graph=FailingCapture, warmup_steps=1)
    with pytest.warns(UserWarning) as caught:
        stats = run(t, 3)  # warm-up, failed capture (the step still runs, uncaptured), eager
    assert [str(w.message) for w in caught] == [
        "train.cuda_graphs: capturing the step failed (RuntimeError: operation not permitted when stream is "
        "capturing); the training step runs eagerly"
    ]
    assert not g.active and g.failure and g.graphs == {}
    assert stats == run(eager, 3) and differing(weights(eager), weights(t)) == []
    for opt in (t.opt_G, t.opt_D):  # what the capture set up is undone
        assert all(isinstance(gr["lr"], float) and not gr["capturable"] for gr in opt.param_groups)


def test_loading_a_checkpoint_drops_the_graphs_and_the_run_continues_exactly(tmp_path):
    """A rollback replaces the optimizers' state tensors: the graphs are dropped, warm up and are
    captured again, and the run continues exactly as an eager run through the same steps."""
    eager = make(tmp_path, "eager")
    t = make(tmp_path, "t")
    g = graphed(t, graph=Uncaptured, warmup_steps=1)
    run(t, 2)
    saved = copy.deepcopy(t._state_dict())
    run(t, 1)
    assert (g.captures, len(g.graphs)) == (1, 1)
    t._load_state(saved)  # what resume and NaN rollback do (the saved random streams included)
    t.own_rng = rng_state()
    assert g.graphs == {} and not g.warm
    assert t.state.step == 2
    after = run(t, 2)
    assert (g.captures, len(g.graphs)) == (2, 1)
    assert run(eager, 4)[2:] == after and differing(weights(eager), weights(t)) == []


# ------------------------------------------------------------------------------------------ CUDA


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp_min(1e-12))


@pytest.mark.gpu
@CUDA
def test_captured_step_matches_the_eager_step_within_bf16_tolerance(tmp_path):
    """bf16, no augmentation (its draws come from the CUDA generator, whose offsets a graph may
    consume differently), five steps: two warm-up steps, the capture, two more replays. Both runs
    make the same updates up to bf16 rounding: the weights' change and the loss statistics agree
    within 5e-2 relative (the tolerance of bench/gpu_bench.py's bf16 agreement)."""
    kw = {"train.precision": "bf16", "augment.policy": []}
    eager = make(tmp_path, "eager", "cuda", **kw)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="train.cuda_graphs")  # no fallback on a card
        t = make(tmp_path, "t", "cuda", **kw, **{"train.cuda_graphs": True})
    assert isinstance(t.graphed, GraphedStep) and t.cuda_graphs_fallback is None
    w0 = weights(t)
    stats_g, stats_e = run(t, 5), run(eager, 5)
    g = t.graphed
    assert g.active and (g.captures, g.replays) == (1, 3), (g.failure, g.captures, g.replays)
    we, wg = weights(eager), weights(t)
    for model in ("G.", "D.", "G_ema."):  # each model's whole update (Adam with beta1=0 amplifies
        # last-bit differences of near-zero gradients into +-lr on single elements: no per-tensor check)
        keys = [k for k in w0 if k.startswith(model)]
        update_g = torch.cat([(wg[k] - w0[k]).flatten() for k in keys])
        update_e = torch.cat([(we[k] - w0[k]).flatten() for k in keys])
        assert update_g.norm() > 0, f"the replays did not change {model}"
        assert rel_err(update_g, update_e) < 5e-2, model
    for s_g, s_e in zip(stats_g, stats_e):
        keys = sorted(s_e)
        assert sorted(s_g) == keys
        assert rel_err(torch.tensor([s_g[k] for k in keys]), torch.tensor([s_e[k] for k in keys])) < 5e-2
    assert isinstance(t.opt_G.param_groups[0]["lr"], float)  # metrics and checkpoints read floats


@pytest.mark.gpu
@CUDA
def test_a_new_locality_width_is_captured_again_with_augmentation_drawn_per_replay(tmp_path):
    t = make(tmp_path, "t", "cuda", **LOCALITY, **{"train.precision": "bf16", "train.cuda_graphs": True})
    g = t.graphed
    run(t, 3)  # two warm-up steps, capture
    before = torch.cuda.get_rng_state()
    stats = run(t, 1)  # a replay: its augmentation (translation) draws advance the CUDA generator
    assert not torch.equal(before, torch.cuda.get_rng_state())
    assert (g.captures, g.replays, list(g.graphs)) == (1, 2, [(1, (True, True))])
    t.stream.position = t.stream.n  # epoch 1: width 2
    stats += run(t, 3)
    assert (g.captures, g.replays, list(g.graphs)) == (2, 3, [(2, (True, True))])
    assert all(torch.isfinite(torch.tensor(list(s.values()))).all() for s in stats)


@pytest.mark.gpu
@CUDA
def test_after_a_rollback_the_new_graph_updates_the_loaded_optimizer_state(tmp_path):
    t = make(tmp_path, "t", "cuda", **{"train.precision": "bf16", "train.cuda_graphs": True})
    g = t.graphed
    run(t, 3)
    saved = copy.deepcopy(t._state_dict())
    run(t, 1)
    t._load_state(saved)
    t.own_rng = rng_state()
    assert g.graphs == {}
    run(t, 2)  # warm-up again
    p = next(iter(t.opt_D.state))
    exp_avg = t.opt_D.state[p]["exp_avg"]
    before = exp_avg.clone()
    run(t, 1)  # capture and replay
    assert (g.captures, g.replays) == (2, 3)
    assert t.opt_D.state[p]["exp_avg"] is exp_avg and not torch.equal(before, exp_avg)
