"""What `transgan-lab train` shows while it trains: a live progress line (tqdm) on a terminal, one
plain line per report when stdout is a file or a CI log.

The engine (``trainers``, torch only) calls ``reporter.report(metrics, ...)`` at every log point and
never prints; ``TrainProgress`` wraps whichever reporter listens (MLflow or none), forwards every
call unchanged, and renders the report: kimg of the total, G updates, img/s, ETA, the last losses
and the newest evaluation.
"""

from __future__ import annotations

import math
import sys
from typing import Any, TextIO

from transgan_lab import metric_registry


def _eta(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "?"
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def ui_hint(uri: str) -> str:
    """Where the runs are and the one command that opens them."""
    return f"MLflow store: {uri}  (open it: transgan-lab ui --tracking-uri '{uri}')"


class TrainProgress:
    """An engine reporter that shows progress and passes every report on to ``inner``."""

    def __init__(
        self,
        inner: Any,  # the reporter that records (MlflowReporter, NullReporter, ...)
        *,
        total_kimg: float,  # training length (train.kimg)
        stream: TextIO | None = None,  # where progress goes (default: stdout)
        live: bool | None = None,  # a redrawn tqdm line; None: when ``stream`` is a terminal
    ):
        self.inner = inner
        self.total_kimg = float(total_kimg)
        self.stream = stream if stream is not None else sys.stdout
        self.live = self.stream.isatty() if live is None else live
        self.last_eval: tuple[str, float] | None = None
        self.bar = None
        if self.live:
            from tqdm import tqdm

            self.bar = tqdm(
                total=self.total_kimg,
                file=self.stream,
                unit="kimg",
                dynamic_ncols=True,
                bar_format="{l_bar}{bar}| {n:.2f}/{total:g} kimg [{elapsed}<{remaining}{postfix}]",
            )

    def report(self, metrics: dict, checkpoint_dir: str | None = None, files: dict | None = None) -> None:
        self.inner.report(metrics, checkpoint_dir, files)
        for name in metric_registry.EVAL_METRICS:
            if isinstance(metrics.get(name), (int, float)):
                self.last_eval = (name, float(metrics[name]))
        kimg = float(metrics.get("kimg", 0.0))
        if self.bar is not None:
            self.bar.set_postfix_str(self._fields(metrics, eta=False), refresh=False)
            self.bar.update(max(0.0, min(kimg, self.total_kimg) - self.bar.n))
        else:
            print(self.line(metrics), file=self.stream, flush=True)

    def _fields(self, metrics: dict, *, eta: bool) -> str:
        parts = []
        g = metrics.get("g_updates", metrics.get("step"))
        if g is not None:
            parts.append(f"G updates {int(g):,}")
        if metrics.get("img_per_s") is not None:
            parts.append(f"{float(metrics['img_per_s']):.0f} img/s")
        if eta:
            kimg, train_s = float(metrics.get("kimg", 0.0)), metrics.get("train_s")
            left = None
            if train_s is not None and kimg > 0:
                left = float(train_s) / kimg * max(0.0, self.total_kimg - kimg)
            parts.append(f"ETA {_eta(left)}")
        losses = [f"{k} {float(metrics[k]):.3f}" for k in ("loss_d", "loss_g") if metrics.get(k) is not None]
        if losses:
            parts.append(" ".join(losses))
        if self.last_eval is not None:
            name, value = self.last_eval
            parts.append(f"{metric_registry.label(name)} {value:.2f}")
        return " | ".join(parts)

    def line(self, metrics: dict) -> str:
        """The plain line of one report (CI logs, files)."""
        kimg = float(metrics.get("kimg", 0.0))
        pct = 100.0 * kimg / self.total_kimg if self.total_kimg > 0 else 100.0
        return f"[train] {kimg:.3f}/{self.total_kimg:g} kimg ({pct:3.0f}%) | " + self._fields(metrics, eta=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
