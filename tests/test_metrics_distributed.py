"""evaluate() under torch.distributed (2 gloo processes on 127.0.0.1): same dict on both ranks,
equal to the 1-process value, and an error on rank 0 reaches every rank instead of a hang."""

from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from conftest import free_port
from test_metrics_digits import TinyG, digits_cfg

from transgan_lab.trainers.metrics import MetricsUnavailable, evaluate

N_FAKE = 301  # odd: the ranks' slices differ in size (151 + 150), exercising the padded gather


def _worker(rank: int, world_size: int, port: int, out: dict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        res = evaluate(TinyG(), digits_cfg(), n_fake=N_FAKE, batch=64)
        out[rank] = {k: (v["value"], v["protocol"], v["info"]["world_size"]) for k, v in res.items()}
        try:
            # a Frechet reference the ranks cannot build: the error must reach both ranks, not hang them
            bad = digits_cfg()
            bad.data.resolution = 12
            evaluate(TinyG(resolution=12), bad, n_fake=N_FAKE)
            out[f"err{rank}"] = None
        except (MetricsUnavailable, RuntimeError) as exc:
            out[f"err{rank}"] = str(exc)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_gloo_ranks_match_one_process():
    single = evaluate(TinyG(), digits_cfg(), n_fake=N_FAKE, batch=100)  # also trains/caches the classifier
    with mp.Manager() as manager:
        out = manager.dict()
        mp.spawn(_worker, args=(2, free_port(), out), nprocs=2, join=True)
        out = dict(out)
    assert out[0] == out[1]  # the very same dict on both ranks
    for m in ("digits_fid", "digits_is"):
        assert out[0][m][0] == pytest.approx(single[m]["value"], rel=1e-5)
        assert out[0][m][1] == single[m]["protocol"]  # the protocol does not mention the world size
        assert out[0][m][2] == 2
    assert out["err0"] and out["err0"] == out["err1"] and "resolution" in out["err0"]
