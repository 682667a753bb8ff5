"""The one direction of imports (DESIGN.md): trainers needs torch alone; analysis never loads torch or ray."""

from __future__ import annotations

import json
import subprocess
import sys

_PROBE = """
import json, sys
for m in sys.argv[1:]:
    __import__(m)
print(json.dumps(sorted(k.split('.')[0] for k in sys.modules)))
"""


def _loaded(*modules: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", _PROBE, *modules], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return set(json.loads(out.stdout))


def test_trainers_import_without_ray_mlflow_or_pydantic():
    loaded = _loaded(
        "transgan_lab.trainers.train",
        "transgan_lab.trainers.models",
        "transgan_lab.trainers.data",
        "transgan_lab.trainers.metrics.evaluate",
        "transgan_lab.trainers.flops",
        "transgan_lab.trainers.checkpoint",
    )
    assert "torch" in loaded
    assert not loaded & {"ray", "mlflow", "pydantic", "yaml", "pandas", "optuna"}, loaded & {
        "ray",
        "mlflow",
        "pydantic",
    }


def test_analysis_imports_without_torch_or_ray():
    loaded = _loaded(
        "transgan_lab.analysis.load",
        "transgan_lab.analysis.tables",
        "transgan_lab.analysis.report",
        "transgan_lab.analysis.cli",
    )
    assert "pandas" in loaded
    assert not loaded & {"torch", "ray"}, loaded & {"torch", "ray"}
