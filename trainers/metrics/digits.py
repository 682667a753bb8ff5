"""The offline domain metric: a small CNN trained on the embedded digits data.

`digits_fid` = Fréchet distance of its 64-d penultimate features; `digits_is` = the Inception-Score
formula on its 10-class logits. These are NOT FID/IS (a different network, a different dataset) and
are never named so. The classifier is trained deterministically (fixed seed, deterministic
algorithms, one thread) in seconds on a CPU, cached on disk under a key of everything it depends
on, and identified in every protocol by the sha256 of its weights.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from . import MetricsUnavailable
from .inception import key_digest

CLASSIFIER_VERSION = "digits-cnn-v1"  # bump when the architecture or recipe below changes
FEATURE_DIM = 64
TRAIN_SEED = 1234
TRAIN_EPOCHS = 15
TRAIN_BATCH = 64
HOLDOUT_EVERY = 6  # every 6th image is held out to measure accuracy (recorded in the protocol)


def to_grey(images: torch.Tensor) -> torch.Tensor:
    """(N, 1|3, H, W) -> (N, 1, H, W); RGB becomes grey by the channel mean."""
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"digits metric needs (N, 1|3, H, W) images, got {tuple(images.shape)}")
    return images if images.shape[1] == 1 else images.mean(dim=1, keepdim=True)


class DigitsClassifier(nn.Module):
    """conv 16 -> conv 32 /2 -> conv 64 /2 -> pool 4x4 -> fc 64 (features) -> ReLU -> fc 10 (logits)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, stride=2, padding=1)
        self.conv3 = nn.Conv2d(32, 64, 3, stride=2, padding=1)
        self.fc1 = nn.Linear(64 * 4 * 4, FEATURE_DIM)
        self.fc2 = nn.Linear(FEATURE_DIM, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = F.relu(self.conv1(x))
        h = F.relu(self.conv2(h))
        h = F.relu(self.conv3(h))
        h = F.adaptive_avg_pool2d(h, 4).flatten(1)  # (N, 64*4*4)
        feats = self.fc1(h)  # (N, 64) pre-activation penultimate features
        return feats, self.fc2(F.relu(feats))


def state_sha256(module: nn.Module) -> str:
    """sha256 over the parameter names and bytes (independent of the pickle format)."""
    h = hashlib.sha256()
    for k, v in sorted(module.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _train(images: torch.Tensor, labels: np.ndarray) -> tuple[DigitsClassifier, float]:
    """Deterministic training on grey images (N, 1, R, R); returns (net, held-out accuracy)."""
    y = torch.from_numpy(labels)
    idx = torch.arange(images.shape[0])
    hold = idx % HOLDOUT_EVERY == 0
    x_tr, y_tr, x_te, y_te = images[~hold], y[~hold], images[hold], y[hold]
    prev_det, prev_threads = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(TRAIN_SEED)
            net = DigitsClassifier()
            opt = torch.optim.Adam(net.parameters(), lr=2e-3)
            g = torch.Generator().manual_seed(TRAIN_SEED)
            for _ in range(TRAIN_EPOCHS):
                perm = torch.randperm(x_tr.shape[0], generator=g)
                for lo in range(0, x_tr.shape[0], TRAIN_BATCH):
                    b = perm[lo : lo + TRAIN_BATCH]
                    # +-1 px random shifts make the features robust to small misplacements
                    xb = torch.roll(
                        x_tr[b], shifts=tuple(torch.randint(-1, 2, (2,), generator=g).tolist()), dims=(2, 3)
                    )
                    loss = F.cross_entropy(net(xb)[1], y_tr[b])
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
            net.eval()
            with torch.no_grad():
                acc = float((net(x_te)[1].argmax(1) == y_te).float().mean())
    finally:
        torch.use_deterministic_algorithms(prev_det)
        torch.set_num_threads(prev_threads)
    return net, acc


def load_or_train(
    *,
    images: torch.Tensor,  # (N, C, R, R) training images in [-1, 1], as the pipeline produces them
    labels: np.ndarray,  # (N,) digit classes
    cache_dir: Path,  # where the trained classifier is cached
) -> tuple[DigitsClassifier, dict, bool]:
    """The classifier for these images (trained once, then cached); returns (net, record, cache_hit)."""
    grey = quantise_float(to_grey(images))
    data_sha = hashlib.sha256(grey.numpy().tobytes() + labels.tobytes()).hexdigest()
    key = {
        "version": CLASSIFIER_VERSION,
        "data_sha256": data_sha,
        "seed": TRAIN_SEED,
        "epochs": TRAIN_EPOCHS,
        "torch": torch.__version__.split("+")[0],
    }
    path = cache_dir / f"digits_classifier-{grey.shape[-1]}px-{key_digest(key)}.pt"
    net = DigitsClassifier()
    hit = path.exists()
    if hit:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        net.load_state_dict(blob["state_dict"])
        acc = float(blob["holdout_accuracy"])
    else:
        net, acc = _train(grey, labels)
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=cache_dir)
        os.close(fd)
        try:
            torch.save({"state_dict": net.state_dict(), "holdout_accuracy": acc}, tmp)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    net.eval().requires_grad_(False)
    record = {
        "classifier": CLASSIFIER_VERSION,
        "classifier_sha256": state_sha256(net),
        "classifier_holdout_accuracy": round(acc, 4),
        "classifier_train_data_sha256": data_sha,
    }
    return net, record, hit


def quantise_float(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] floats -> uint8 (TransGAN's quantisation) -> back to [-1, 1] floats."""
    from .sampling import to_uint8

    return to_uint8(images).float() / 127.5 - 1.0


@torch.no_grad()
def digits_features(
    images: torch.Tensor,  # (N, 1|3, R, R) floats in about [-1, 1] or uint8
    net: DigitsClassifier,  # from load_or_train
    *,
    batch: int = 500,  # images per forward pass
) -> dict[str, np.ndarray]:
    """{'feat': (N, 64) float32, 'logits': (N, 10) float32}: quantise to uint8, grey, classify."""
    if images.shape[0] == 0:
        return {"feat": np.zeros((0, FEATURE_DIM), np.float32), "logits": np.zeros((0, 10), np.float32)}
    x = images.float() / 127.5 - 1.0 if images.dtype == torch.uint8 else quantise_float(images)
    x = to_grey(x)
    feats, logits = [], []
    for lo in range(0, x.shape[0], batch):
        f, lg = net(x[lo : lo + batch])
        feats.append(f)
        logits.append(lg)
    return {"feat": torch.cat(feats).numpy(), "logits": torch.cat(logits).numpy()}


def check_digits_config(cfg: Any) -> None:
    """digits_* metrics exist only for the digits dataset."""
    if getattr(cfg.data, "dataset", None) != "digits":
        raise MetricsUnavailable(
            f"digits_fid / digits_is are defined only for data.dataset='digits' (got {cfg.data.dataset!r}); "
            "use fid / is / kid (TF-Inception weights file needed) for other datasets"
        )
