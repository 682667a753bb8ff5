"""Table 3: multi-task co-training (super-resolution) and locality-aware initialisation, ablated.

python experiments/table3_mtct_locality.py           # CIFAR-10, TransGAN-S
python experiments/table3_mtct_locality.py --smoke   # tiny digits variants, locally
"""

from _study import main

P = "cifar10-s"
VARIANTS = [
    ("TransGAN (DiffAugment only)", P, ["model.mtct.enabled=false", "model.g.locality.enabled=false"]),
    ("+ MT-CT", P, ["model.mtct.enabled=true", "model.g.locality.enabled=false"]),
    ("+ MT-CT + locality init", P, ["model.mtct.enabled=true", "model.g.locality.enabled=true"]),
]
LOCAL = ["model.g.locality.schedule=[[0,2],[1,3]]", "model.g.locality.off_epoch=2"]  # epochs of a tiny run
SMOKE_VARIANTS = [
    ("TransGAN (DiffAugment only)", "digits-tiny", []),
    ("+ MT-CT", "digits-tiny", ["model.mtct.enabled=true"]),
    ("+ MT-CT + locality init", "digits-tiny", ["model.mtct.enabled=true", "model.g.locality.enabled=true"] + LOCAL),
]

if __name__ == "__main__":
    raise SystemExit(main("table3", __doc__.splitlines()[0], VARIANTS, SMOKE_VARIANTS))
