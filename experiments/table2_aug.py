"""Table 2: differentiable augmentation helps the transformer GAN more than a conv GAN.

python experiments/table2_aug.py                 # CIFAR-10, TransGAN-S and the conv baseline
python experiments/table2_aug.py --smoke         # tiny digits variants, locally
"""

from _study import main

P = "cifar10-s"
CONV = ["model.g.arch=conv", "model.d.arch=conv", "model.mtct.enabled=false", "model.g.locality.enabled=false"]
VARIANTS = [
    ("conv GAN, no augmentation", P, CONV + ["augment.policy=[]"]),
    ("conv GAN + DiffAugment", P, CONV),
    ("TransGAN, no augmentation", P, ["augment.policy=[]"]),
    ("TransGAN + DiffAugment", P, []),
]
SMOKE_VARIANTS = [
    ("TransGAN, no augmentation", "digits-tiny", ["augment.policy=[]"]),
    ("TransGAN + translation", "digits-tiny", ["augment.policy=[translation]"]),
    ("TransGAN + DiffAugment", "digits-tiny", []),
]

if __name__ == "__main__":
    raise SystemExit(main("table2", __doc__.splitlines()[0], VARIANTS, SMOKE_VARIANTS))
