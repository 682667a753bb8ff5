"""Checkpoint files: atomic directories, manifests with checksums, refusal of damage and pickled code."""

from __future__ import annotations

import json
import os
import pickle
import warnings

import pytest
import torch

from transgan_lab.trainers import checkpoint as ckpt
from transgan_lab.trainers.ema import ema_beta, update_ema


def _state(seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"G": {"w": torch.randn(4, 4, generator=g)}, "data": {"position": seed}}


def test_save_load_round_trip(tmp_path):
    path = ckpt.save_checkpoint(tmp_path, step=7, state=_state(1), meta={"nimg": 448, "config": {"a": 1}})
    assert path.name == "ckpt-00000007"
    manifest, state = ckpt.load_checkpoint(path)
    assert manifest["step"] == 7 and manifest["nimg"] == 448 and manifest["config"] == {"a": 1}
    assert set(manifest["files"]) == {"G.pt", "data.pt"}
    assert torch.equal(state["G"]["w"], _state(1)["G"]["w"])
    assert state["data"] == {"position": 1}
    assert not list(tmp_path.glob(".tmp-*")), "no temp dir left after a successful save"


def test_flipped_byte_is_detected_and_previous_used(tmp_path):
    ckpt.save_checkpoint(tmp_path, step=1, state=_state(1), meta={})
    newer = ckpt.save_checkpoint(tmp_path, step=2, state=_state(2), meta={})
    f = newer / "G.pt"
    raw = bytearray(f.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    f.write_bytes(bytes(raw))
    with pytest.raises(ckpt.CheckpointError, match="does not match its checksum"):
        ckpt.verify_checkpoint(newer)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        found, manifest = ckpt.latest_valid(tmp_path)
    assert found.name == "ckpt-00000001" and manifest["step"] == 1
    assert any("damaged" in str(w.message) for w in caught)


def test_truncated_and_missing_manifest(tmp_path):
    p = ckpt.save_checkpoint(tmp_path, step=3, state=_state(3), meta={})
    (p / "G.pt").write_bytes((p / "G.pt").read_bytes()[:50])
    with pytest.raises(ckpt.CheckpointError, match="damaged"):
        ckpt.load_checkpoint(p)
    (p / "manifest.json").unlink()
    with pytest.raises(ckpt.CheckpointError, match="manifest.json is missing"):
        ckpt.read_manifest(p)
    with pytest.raises(ckpt.CheckpointError, match="every checkpoint .* is damaged|no checkpoints"):
        ckpt.latest_valid(tmp_path)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_pickled_code_is_refused(tmp_path):
    p = ckpt.save_checkpoint(tmp_path, step=4, state=_state(4), meta={})
    evil = p / "G.pt"
    with open(evil, "wb") as f:
        torch.save({"payload": _Evil()}, f, pickle_module=pickle)
    # Re-sign the manifest so only weights_only stands between the file and code execution.
    manifest = json.loads((p / "manifest.json").read_text())
    manifest["files"]["G.pt"] = {"sha256": ckpt._sha256(evil), "bytes": evil.stat().st_size}
    (p / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ckpt.CheckpointError, match="refusing to load"):
        ckpt.load_checkpoint(p)


def test_interrupted_write_leaves_previous_valid(tmp_path):
    good = ckpt.save_checkpoint(tmp_path, step=5, state=_state(5), meta={})

    class Boom:
        def __reduce__(self):
            raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        ckpt.save_checkpoint(tmp_path, step=6, state={"G": {"w": torch.ones(2)}, "bad": Boom()}, meta={})
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == [good.name]
    assert not list(tmp_path.glob(".tmp-*"))
    assert ckpt.latest_valid(tmp_path)[0] == good


def test_prune_keeps_last_and_named(tmp_path):
    for s in range(1, 7):
        ckpt.save_checkpoint(tmp_path, step=s, state=_state(s), meta={})
    (tmp_path / ".tmp-ckpt-00000099-1").mkdir()  # left by a killed writer
    ckpt.prune(tmp_path, keep_last=2, keep={"ckpt-00000002"})
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == ["ckpt-00000002", "ckpt-00000005", "ckpt-00000006"]
    assert not (tmp_path / ".tmp-ckpt-00000099-1").exists()


def test_resolve_root(tmp_path):
    run = tmp_path / "run"
    p = ckpt.save_checkpoint(run / "checkpoints", step=1, state=_state(1), meta={})
    assert ckpt.resolve_checkpoint_root(run) == run / "checkpoints"
    assert ckpt.resolve_checkpoint_root(p) == run / "checkpoints"
    with pytest.raises(ckpt.CheckpointError, match="does not exist"):
        ckpt.resolve_checkpoint_root(tmp_path / "nope")


def test_ema_beta_and_update():
    # Half-life semantics: after ema_kimg*1000 images at beta per update, the old weight is 1/2.
    b = ema_beta(nimg=10**9, img_per_update=256, ema_kimg=500, rampup=0.1, fixed_beta=None)
    assert b ** (500_000 / 256) == pytest.approx(0.5, rel=1e-9)
    # Ramp-up: early on the half-life is rampup * nimg.
    early = ema_beta(nimg=2560, img_per_update=256, ema_kimg=500, rampup=0.1, fixed_beta=None)
    assert early == pytest.approx(0.5 ** (256 / 256.0))
    assert ema_beta(nimg=1, img_per_update=1, ema_kimg=1, rampup=None, fixed_beta=0.999) == 0.999
    G = torch.nn.Linear(3, 2)
    G_ema = torch.nn.Linear(3, 2)
    before = G_ema.weight.detach().clone()
    update_ema(G_ema, G, beta=0.75)
    assert torch.allclose(G_ema.weight, 0.75 * before + 0.25 * G.weight.detach(), atol=1e-7)
