"""Table 4: scaling the generator, TransGAN-S / M / L / XL (width and depth).

python experiments/table4_scaling.py             # CIFAR-10, the four presets
python experiments/table4_scaling.py --smoke     # the same ladder at digits size, locally
"""

from _study import main

VARIANTS = [(f"TransGAN-{s.upper()}", f"cifar10-{s}", []) for s in ("s", "m", "l", "xl")]
# Widths x2 and deeper first stages, as the ladder does, at a size a CPU trains in seconds.
SMOKE_VARIANTS = [
    ("TransGAN-S", "digits-tiny", ["model.g.embed_dim=32", "model.g.depths=[1,1,1]"]),
    ("TransGAN-M", "digits-tiny", ["model.g.embed_dim=64", "model.g.depths=[1,1,1]"]),
    ("TransGAN-L", "digits-tiny", ["model.g.embed_dim=64", "model.g.depths=[2,1,1]"]),
    ("TransGAN-XL", "digits-tiny", ["model.g.embed_dim=128", "model.g.depths=[2,2,1]"]),
]

if __name__ == "__main__":
    raise SystemExit(main("table4", __doc__.splitlines()[0], VARIANTS, SMOKE_VARIANTS))
