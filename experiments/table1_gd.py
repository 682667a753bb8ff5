"""Table 1: which generator / discriminator pairs train (transformer vs conv G and D).

python experiments/table1_gd.py   # CIFAR-10 at the paper scale (ray submit, a cluster)
python experiments/table1_gd.py --dataset digits   # the digits-sized study, 3 seeds, on a CPU
python experiments/table1_gd.py --dataset smoke    # seconds-long variants: checks the whole path

The same as `transgan-lab study table1` (whose default dataset is digits); the variants and budgets
live in transgan_lab.platform.study. Every option of that command works here (--seeds, --kimg, ...).
"""

import sys

from transgan_lab.platform import experiments  # noqa: F401  (quiet, local defaults for Ray and MLflow)
from transgan_lab.platform.cli import main

if __name__ == "__main__":
    args = sys.argv[1:]
    raise SystemExit(main(["study", "table1", *([] if "--dataset" in args else ["--dataset", "cifar10"]), *args]))
