"""Table 1: which generator / discriminator pairs train (transformer vs conv G and D).

python experiments/table1_gd.py                  # CIFAR-10, TransGAN-S scale, on a cluster
python experiments/table1_gd.py --smoke          # tiny digits variants, locally
"""

from _study import main

P = "cifar10-s"
VARIANTS = [
    (
        "conv G / conv D",
        P,
        ["model.g.arch=conv", "model.d.arch=conv", "model.mtct.enabled=false", "model.g.locality.enabled=false"],
    ),
    ("transformer G / conv D", P, ["model.d.arch=conv"]),
    ("conv G / transformer D", P, ["model.g.arch=conv", "model.mtct.enabled=false", "model.g.locality.enabled=false"]),
    ("transformer G / transformer D", P, []),
]
SMOKE_VARIANTS = [
    ("transformer G / transformer D", "digits-tiny", []),
    ("transformer G / conv D", "digits-tiny", ["model.d.arch=conv", "model.d.conv_ch=16"]),
    ("conv G / transformer D", "digits-tiny", ["model.g.arch=conv", "model.g.conv_ch=16"]),
]

if __name__ == "__main__":
    raise SystemExit(main("table1", __doc__.splitlines()[0], VARIANTS, SMOKE_VARIANTS))
