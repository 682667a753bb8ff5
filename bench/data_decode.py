"""Image-file decoding rate of the file-backed datasets (celeba, folder) by `data.loader_workers`.

    python bench/data_decode.py [--images 512] [--workers 0,2,4] [--rounds 3]

Writes CelebA-shaped JPEGs (178x218, quality 95, camera-like noise so they do not compress to
nothing) into a temporary folder, then reads global batches of 64 at the CelebA-64 preset's
resolution through `build_dataset(...).get_batch` for each worker count, interleaved round by
round (this machine is shared and noisy). Reports images/s per setting, its ratio to one thread,
and checks every setting returns the same tensors. Writes bench/results/data_decode_<device>.json.

Why it matters: one thread decodes about a thousand CelebA images a second (crop and resize to
64x64 included) on this machine's cores; a GPU trains a TransGAN step faster than that, so with a
single decode thread the data, not the model, can set the pace. Threads help only as far as PIL
releases the GIL while decoding, which this benchmark measures rather than assumes.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from PIL import Image
from train_step import machine

from transgan_lab.trainers.data import build_dataset

REPO = Path(__file__).resolve().parents[1]


def write_faces(folder: Path, n: int, seed: int = 0) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:218, 0:178]
    for i in range(n):
        base = np.stack([(yy + 11 * i) % 256, (xx * 2 + 7 * i) % 256, (yy + xx) // 2 % 256], -1)
        a = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        Image.fromarray(a).save(folder / f"{i + 1:06d}.jpg", quality=95)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=512)
    ap.add_argument("--workers", default="0,2,4")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--resolution", type=int, default=64)
    ap.add_argument("--out", help="JSON path (default bench/results/data_decode_cpu.json)")
    args = ap.parse_args(argv)
    workers = [int(w) for w in args.workers.split(",")]
    report = {"benchmark": "data_decode", "machine": machine(), "settings": vars(args), "workers": {}}
    with tempfile.TemporaryDirectory() as tmp:
        write_faces(Path(tmp) / "img_align_celeba", args.images)
        sets = {
            w: build_dataset(
                SimpleNamespace(
                    dataset="celeba", root=tmp, resolution=args.resolution, channels=3, download=False, loader_workers=w
                )
            )
            for w in workers
        }
        batches = [list(range(lo, min(lo + args.batch, args.images))) for lo in range(0, args.images, args.batch)]
        first = {w: ds.get_batch(batches[0]) for w, ds in sets.items()}  # warm-up: imports, thread start
        same = all(torch.equal(first[w], first[workers[0]]) for w in workers)
        times: dict[int, list[float]] = {w: [] for w in workers}
        for _ in range(args.rounds):
            for w, ds in sets.items():
                t0 = time.perf_counter()
                for b in batches:
                    ds.get_batch(b)
                times[w].append(time.perf_counter() - t0)
    base = args.images / statistics.median(times[workers[0]])
    for w in workers:
        rate = args.images / statistics.median(times[w])
        report["workers"][str(w)] = {"img_per_s": rate, "speedup_vs_first": rate / base, "rounds_s": times[w]}
        print(f"loader_workers={w}: {rate:8.0f} img/s  x{rate / base:.2f} vs loader_workers={workers[0]}", flush=True)
    report["identical_batches"] = same
    out = Path(args.out or REPO / "bench" / "results" / "data_decode_cpu.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print(f"identical batches across settings: {same}\nwrote {out}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
