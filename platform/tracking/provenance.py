"""Where a run came from: the code's git commit and the GPU it ran on (tags of every run)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


def git_commit(repo: str | os.PathLike | None = None) -> str:
    """HEAD of the checkout this code runs from ("unknown" outside git), "+dirty" when modified."""
    root = Path(repo) if repo else Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        if sha.returncode != 0:
            return "unknown"
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return sha.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def gpu_name() -> str:
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
    except Exception:  # noqa: BLE001 - no torch/cuda: a CPU run
        pass
    return "cpu"
