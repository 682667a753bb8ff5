"""Checkpoints: one directory per checkpoint, written atomically, verified by a manifest.

Layout of ``<root>/ckpt-<step:08d>/``:
    manifest.json   step, images seen, config + hashes, library versions, sha256 of every file
    <name>.pt       one file per state entry (G, D, G_ema, opt_G, opt_D, rng, data, ...)

Writing goes to ``<root>/.tmp-ckpt-<step>-<pid>/`` (files fsynced), then one ``os.rename`` makes it
visible; a crash mid-write leaves only a temp dir that is ignored and cleaned later. Loading checks
every checksum and uses ``torch.load(weights_only=True)``, so a checkpoint can never run code.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform as _stdlib_platform
import shutil
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import torch

MANIFEST = "manifest.json"
PREFIX = "ckpt-"
FORMAT_VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint is missing, damaged or does not fit this run; the message says what to do."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def versions() -> dict[str, str]:
    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "cuda": str(torch.version.cuda),
        "machine": _stdlib_platform.machine(),
    }


def checkpoint_name(step: int) -> str:
    return f"{PREFIX}{step:08d}"


def save_checkpoint(
    root: str | Path,  # folder holding all checkpoints of a run
    *,
    step: int,  # training step the state belongs to
    state: dict[str, Any],  # name -> object torch.save can write with weights_only loading
    meta: dict[str, Any],  # JSON-able facts for the manifest (nimg, config, hashes, ...)
) -> Path:
    """Write one checkpoint atomically and return its final directory."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / checkpoint_name(step)
    tmp = root / f".tmp-{checkpoint_name(step)}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        files = {}
        for name, obj in state.items():
            path = tmp / f"{name}.pt"
            with open(path, "wb") as f:
                torch.save(obj, f)
                f.flush()
                os.fsync(f.fileno())
            files[f"{name}.pt"] = {"sha256": _sha256(path), "bytes": path.stat().st_size}
        manifest = {
            "format": FORMAT_VERSION,
            "step": int(step),
            "created_unix": time.time(),
            "versions": versions(),
            "files": files,
            **meta,
        }
        with open(tmp / MANIFEST, "w") as f:
            json.dump(manifest, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        _fsync_dir(tmp)
        if final.exists():  # the same step saved again (e.g. after a rollback): replace it
            old = root / f".old-{final.name}-{os.getpid()}"
            os.rename(final, old)
            os.rename(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, final)
        _fsync_dir(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def read_manifest(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        return json.loads((path / MANIFEST).read_text())
    except FileNotFoundError:
        raise CheckpointError(
            f"{path} is not a checkpoint: {MANIFEST} is missing (an interrupted write leaves no manifest); "
            "give a directory named ckpt-<step> or the run directory that holds checkpoints/"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise CheckpointError(f"{path}/{MANIFEST} is damaged (not valid JSON); use an earlier checkpoint") from None


def verify_checkpoint(path: str | Path) -> dict[str, Any]:
    """Check the manifest and every file's size and sha256; return the manifest."""
    path = Path(path)
    manifest = read_manifest(path)
    for name, info in manifest.get("files", {}).items():
        f = path / name
        if not f.exists():
            raise CheckpointError(f"checkpoint {path} is incomplete: {name} is missing; use an earlier checkpoint")
        if f.stat().st_size != info["bytes"] or _sha256(f) != info["sha256"]:
            raise CheckpointError(
                f"checkpoint {path} is damaged: {name} does not match its checksum (truncated or modified); "
                "use an earlier checkpoint"
            )
    return manifest


def load_checkpoint(
    path: str | Path, *, names: list[str] | None = None, map_location: Any = "cpu"
) -> tuple[dict, dict]:
    """Verify and load a checkpoint: (manifest, {name: object}). Never unpickles code."""
    path = Path(path)
    manifest = verify_checkpoint(path)
    wanted = names if names is not None else [n[: -len(".pt")] for n in manifest["files"]]
    state = {}
    for name in wanted:
        if f"{name}.pt" not in manifest["files"]:
            raise CheckpointError(f"checkpoint {path} has no entry {name!r}; it holds {sorted(manifest['files'])}")
        try:
            state[name] = torch.load(path / f"{name}.pt", map_location=map_location, weights_only=True)
        except Exception as e:  # noqa: BLE001 - weights_only refuses pickled code (UnpicklingError); any failure is a refusal
            raise CheckpointError(
                f"refusing to load {path / (name + '.pt')}: {type(e).__name__}: {str(e).splitlines()[0]} "
                "(only tensors and plain containers are accepted)"
            ) from None
    return manifest, state


def list_checkpoints(root: str | Path) -> list[Path]:
    """Complete-looking checkpoint dirs under root, oldest first (temp dirs are ignored)."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith(PREFIX))


def resolve_checkpoint_root(path: str | Path) -> Path:
    """A run dir (holding checkpoints/), a checkpoints folder, or one checkpoint -> its folder."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path} does not exist; give a run directory or a checkpoint directory")
    if (path / MANIFEST).exists() or path.name.startswith(PREFIX):
        return path.parent
    if (path / "checkpoints").is_dir():
        return path / "checkpoints"
    return path


def latest_valid(path: str | Path) -> tuple[Path, dict]:
    """The newest checkpoint that verifies. A damaged newer one is skipped with a warning.

    ``path`` may be one checkpoint (then it must verify), a run dir or a checkpoints folder.
    """
    path = Path(path)
    if (path / MANIFEST).exists() or path.name.startswith(PREFIX):
        return path, verify_checkpoint(path)
    root = resolve_checkpoint_root(path)
    candidates = list_checkpoints(root)
    if not candidates:
        raise CheckpointError(f"no checkpoints under {root}; train first or give a checkpoint directory")
    problems = []
    for ckpt in reversed(candidates):
        try:
            return ckpt, verify_checkpoint(ckpt)
        except CheckpointError as e:
            problems.append(str(e))
            warnings.warn(f"skipping damaged checkpoint: {e}", stacklevel=2)
    raise CheckpointError(f"every checkpoint under {root} is damaged: " + " | ".join(problems))


def prune(root: str | Path, *, keep_last: int, keep: set[str] = frozenset()) -> list[Path]:
    """Delete all but the newest ``keep_last`` checkpoints and those named in ``keep``; stale temp dirs too."""
    root = Path(root)
    removed = []
    ckpts = list_checkpoints(root)
    for p in ckpts[: max(0, len(ckpts) - keep_last)]:
        if p.name not in keep:
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
    for p in root.glob(".tmp-*"):
        if p.is_dir() and not p.name.endswith(f"-{os.getpid()}"):
            shutil.rmtree(p, ignore_errors=True)
    return removed
