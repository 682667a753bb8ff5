"""``digits``: scikit-learn's 1,797 real 8x8 handwritten digits (shipped inside scikit-learn, the
embedded default dataset), upscaled to the resolution by the one digits resize."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from transgan_lab.trainers.data.base import DatasetError, ImageDataset


def upscale_digits(x: torch.Tensor, *, resolution: int, upscale: str = "bilinear") -> torch.Tensor:
    """Digits in [0, 1], (N, 1, 8, 8) -> (N, 1, resolution, resolution) in [0, 1].

    The filter is part of the data: on the digits metric, nearest instead of bilinear upscaling of
    the *same* real digits moves the score by ~87 (reference/digits-calibration.md), so real images,
    reference statistics and anything compared with them must come through this one function.

    - ``align_corners=False``: half-pixel centres, so each 8x8 pixel covers an exact
      (resolution/8)^2 block and the image is not shifted (the convention of PIL, OpenCV and
      ``tf.image.resize``); the resolution must be a multiple of 8 for that.
    - ``antialias=False`` on purpose: antialiasing only changes a filter when *shrinking*; every
      digits path enlarges 8 -> resolution, where bilinear gives the same result either way (max
      difference 1e-7) but bicubic does not: torch's antialiased bicubic switches to PIL's kernel
      (a = -0.5) from the standard a = -0.75 (values differ by up to 0.08). We keep the plain,
      widely reproduced kernels and say so in the protocol.
    - bicubic overshoots near edges, so the result is clamped to [0, 1].
    - ``nearest`` uses ``nearest-exact`` (pixel centres; identical to ``nearest`` for the
      integer factors used here).
    """
    if upscale not in ("bilinear", "bicubic", "nearest"):
        raise DatasetError(f"data.upscale={upscale!r}: choose bilinear, bicubic or nearest")
    if resolution == x.shape[-1]:
        return x.clone()
    if upscale == "nearest":
        y = F.interpolate(x, size=(resolution, resolution), mode="nearest-exact")
    else:
        y = F.interpolate(x, size=(resolution, resolution), mode=upscale, align_corners=False, antialias=False)
    return y.clamp_(0.0, 1.0)


def digits_images(*, resolution: int, channels: int = 1, upscale: str = "bilinear") -> torch.Tensor:
    """All 1,797 scikit-learn digits as float (1797, channels, resolution, resolution) in [-1, 1]."""
    if resolution % 8:
        raise DatasetError(
            f"data.resolution={resolution} for digits: the 8x8 digits are upscaled by a whole factor, so "
            "the resolution must be a multiple of 8 (16 or 32 in the presets)"
        )
    if channels not in (1, 3):
        raise DatasetError(f"data.channels={channels}: use 1 (grey) or 3 (the grey digit repeated as RGB)")
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:
        raise DatasetError(
            f"digits: scikit-learn is needed for the embedded digits ({e}); pip install scikit-learn"
        ) from None
    raw = load_digits().images  # (1797, 8, 8) float64, integer values 0..16
    x = torch.from_numpy(np.ascontiguousarray(raw, dtype=np.float32)).div_(16.0).unsqueeze(1)  # (N, 1, 8, 8)
    x = upscale_digits(x, resolution=resolution, upscale=upscale)
    x = x.mul_(2.0).sub_(1.0)
    if channels == 3:
        x = x.repeat(1, 3, 1, 1).contiguous()  # (N, 3, R, R): the grey digit on all three channels
    return x


class Digits(ImageDataset):
    """scikit-learn's ``load_digits``: 1,797 real 8x8 digits (values 0..16), upscaled, in memory."""

    name = "digits"

    def __init__(self, *, resolution: int, channels: int, upscale: str):
        self.images = digits_images(resolution=resolution, channels=channels, upscale=upscale)
        self.info = {
            "dataset": "digits",
            "split": "all",
            "count": len(self.images),
            "source_size": 8,
            "resize": f"{upscale}-x{resolution // 8} align_corners=False antialias=False",
            "resolution": resolution,
            "channels": channels,
        }

    def __len__(self) -> int:
        return self.images.shape[0]
