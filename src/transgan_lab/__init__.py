"""TransGAN Lab: train, sweep and compare pure-transformer GANs.

The import root maps three source folders of the repository:
``transgan_lab.trainers`` (pure PyTorch), ``transgan_lab.platform`` (config, Ray, MLflow, CLI)
and ``transgan_lab.analysis`` (MLflow runs -> tables).
"""

from pathlib import Path as _Path

__version__ = "0.1.0"

# In a source checkout (editable install) the three folders sit at the repository root, two levels
# above this file. `platform/` deliberately has no __init__.py (it must never shadow the standard
# `platform` module), and an editable install cannot map such a folder by itself, so the root is
# added to this package's search path. An installed wheel has them inside the package instead.
_repo = _Path(__file__).resolve().parents[2]
if not (_Path(__file__).parent / "trainers").exists() and (_repo / "trainers" / "__init__.py").exists():
    __path__.append(str(_repo))  # noqa: F821 - the package's own __path__
