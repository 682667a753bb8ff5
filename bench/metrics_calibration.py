"""Calibrate the offline digits metric on this machine; print a table and write JSON.

Rows (digits_fid / digits_is, the digits classifier's features; NOT FID/IS):
  real-vs-real   two halves of the 1,797 real digits (898 vs 899; the metric's noise floor at that n)
  real-all       all real digits scored as "generated" against the full reference (IS of real data)
  untrained-G    build_generator(load_config("digits-tiny")) at its random initialisation, n_fake=2000
  trained-G      --checkpoint DIR: the EMA generator of a trained run (the demo), n_fake=2000
plus the wall time of the digits metrics (classifier training, cold and warm evaluation).

    .venv/bin/python bench/metrics_calibration.py [--checkpoint RUN_OR_CKPT_DIR] [--out JSON]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from transgan_lab.platform.config import load_config
from transgan_lab.trainers.data import build_dataset
from transgan_lab.trainers.metrics import digits as D
from transgan_lab.trainers.metrics import evaluate, frechet_distance, inception_score
from transgan_lab.trainers.metrics.fid import feature_stats

REPO = Path(__file__).resolve().parents[1]


def _load_trained_generator(path: str):
    from transgan_lab.platform.config import from_dict
    from transgan_lab.trainers.checkpoint import latest_valid, load_checkpoint
    from transgan_lab.trainers.models import build_generator

    ckpt, manifest = latest_valid(path)
    if "config" not in manifest:
        raise SystemExit(f"{ckpt}/manifest.json has no 'config'; cannot rebuild the generator")
    cfg = from_dict(manifest["config"])
    _, state = load_checkpoint(ckpt, names=["G_ema"])
    G = build_generator(cfg)
    G.load_state_dict(state["G_ema"])
    return G, cfg, str(ckpt)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", help="run dir or checkpoint dir of a trained digits run (adds the trained-G row)")
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "metrics_calibration_cpu.json"))
    ap.add_argument("--n-fake", type=int, default=2000)
    args = ap.parse_args()

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    cfg = load_config("digits-tiny")
    cache = tempfile.mkdtemp(prefix="tgl-calib-")  # cold cache: the timings include classifier training
    cfg = cfg.model_copy(update={"eval": cfg.eval.model_copy(update={"cache_dir": cache})})
    rows, timings = [], {}

    # classifier (trained once; cold)
    real = build_dataset(cfg.data).get_batch(range(1797))  # (1797, 1, 16, 16)
    from sklearn.datasets import load_digits

    labels = load_digits().target.astype(np.int64)
    t = time.perf_counter()
    net, record, _ = D.load_or_train(images=real, labels=labels, cache_dir=Path(cache))
    timings["classifier_train_s"] = round(time.perf_counter() - t, 2)
    t = time.perf_counter()
    D.load_or_train(images=real, labels=labels, cache_dir=Path(cache))
    timings["classifier_load_cached_s"] = round(time.perf_counter() - t, 3)

    # real vs real: two halves (interleaved: even vs odd indices -> 899 vs 898)
    t = time.perf_counter()
    f = D.digits_features(real, net)
    timings["features_1797_s"] = round(time.perf_counter() - t, 3)
    a, b = f["feat"][0::2], f["feat"][1::2]
    rows.append(
        {
            "row": "real-vs-real halves",
            "n_real": len(a),
            "n_fake": len(b),
            "digits_fid": frechet_distance(*feature_stats(a), *feature_stats(b)),
            "digits_is": inception_score(f["logits"][1::2], splits=10)[0],
        }
    )
    rng = np.random.default_rng(0)
    fids = []
    for _ in range(20):
        p = rng.permutation(1797)
        fids.append(frechet_distance(*feature_stats(f["feat"][p[:898]]), *feature_stats(f["feat"][p[898:]])))
    rows.append(
        {
            "row": "real-vs-real random halves (20 splits)",
            "n_real": 899,
            "n_fake": 898,
            "digits_fid": float(np.mean(fids)),
            "digits_fid_std": float(np.std(fids)),
            "digits_is": None,
        }
    )
    rows.append(
        {
            "row": "real-all (IS of the real data)",
            "n_real": 1797,
            "n_fake": 1797,
            "digits_fid": 0.0,
            "digits_is": inception_score(f["logits"], splits=10)[0],
        }
    )
    # The IS protocol averages over 10 contiguous splits. The dataset cycles through the ten classes,
    # so each split of it is balanced; a generator's samples come in random order, and each split's
    # label histogram is then noisy, which lowers its H(y). The fair real reference is the real
    # data in random order.
    shuffled = [inception_score(f["logits"][rng.permutation(1797)], splits=10)[0] for _ in range(20)]
    rows.append(
        {
            "row": "real-all in random order (IS over 20 orders)",
            "n_real": 1797,
            "n_fake": 1797,
            "digits_fid": 0.0,
            "digits_is": float(np.mean(shuffled)),
            "digits_is_std": float(np.std(shuffled)),
        }
    )

    # untrained generator
    try:
        from transgan_lab.trainers.models import build_generator

        torch.manual_seed(0)
        G = build_generator(cfg)
        t = time.perf_counter()
        res = evaluate(G, cfg, n_fake=args.n_fake)
        timings[f"evaluate_untrained_G_{args.n_fake}_s"] = round(time.perf_counter() - t, 2)
        rows.append(
            {
                "row": "untrained G (digits-tiny, torch.manual_seed(0))",
                "n_real": 1797,
                "n_fake": args.n_fake,
                "digits_fid": res["digits_fid"]["value"],
                "digits_is": res["digits_is"]["value"],
            }
        )
        protocol = res["digits_fid"]["protocol"]
    except ImportError as exc:
        rows.append({"row": f"untrained G: not available ({exc})", "digits_fid": None, "digits_is": None})
        protocol = None

    if args.checkpoint:
        G, ckpt_cfg, ckpt = _load_trained_generator(args.checkpoint)
        ckpt_cfg = ckpt_cfg.model_copy(update={"eval": ckpt_cfg.eval.model_copy(update={"cache_dir": cache})})
        t = time.perf_counter()
        res = evaluate(G, ckpt_cfg, metrics=["digits_fid", "digits_is"], n_fake=args.n_fake)
        timings[f"evaluate_trained_G_{args.n_fake}_s"] = round(time.perf_counter() - t, 2)
        rows.append(
            {
                "row": f"trained G ({ckpt})",
                "n_real": 1797,
                "n_fake": args.n_fake,
                "digits_fid": res["digits_fid"]["value"],
                "digits_is": res["digits_is"]["value"],
            }
        )
    else:
        rows.append(
            {
                "row": "trained G: pass --checkpoint DIR (the demo's run) to fill this row",
                "digits_fid": None,
                "digits_is": None,
            }
        )

    print("digits metric calibration (digits_fid / digits_is: a digits classifier, NOT FID/IS)")
    print(
        f"classifier {record['classifier']} sha256 {record['classifier_sha256'][:16]}... "
        f"held-out accuracy {record['classifier_holdout_accuracy']}"
    )
    for r in rows:
        fid = (
            "-"
            if r["digits_fid"] is None
            else f"{r['digits_fid']:.1f}" + (f" ± {r['digits_fid_std']:.1f}" if "digits_fid_std" in r else "")
        )
        is_ = "-" if r["digits_is"] is None else f"{r['digits_is']:.2f}"
        print(f"  {r['row']:60s} digits_fid {fid:>14s}   digits_is {is_:>6s}")
    print("timings:", json.dumps(timings))
    out = {
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "loadavg_1m": os.getloadavg()[0]},
        "classifier": record,
        "rows": rows,
        "timings": timings,
        "protocol": protocol,
        "note": "shared 2-core machine; timings vary with load (loadavg recorded)",
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    print("wrote", args.out)


if __name__ == "__main__":
    sys.exit(main())
