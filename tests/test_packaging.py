"""Packaging: `platform/` never shadows the standard module, and the wheel holds the three folders.

The repository has a top-level folder named `platform/`; with an `__init__.py` it would replace
Python's `platform` module whenever the repo root is on sys.path (a shell in the repo, pytest, a
Ray working_dir), and torch, ray and mlflow all import `platform`.
"""

from __future__ import annotations

import json
import os
import platform as std_platform
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_platform_folder_is_not_a_top_level_package():
    assert (REPO / "platform" / "config.py").is_file()
    assert not (REPO / "platform" / "__init__.py").exists(), "platform/__init__.py would shadow the stdlib module"


@pytest.mark.slow
def test_stdlib_platform_wins_with_repo_root_first_on_sys_path():
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); first = sys.path[0]\n"
        "import platform\n"
        "import torch, ray, mlflow\n"
        "import transgan_lab.platform.config as cfg\n"
        "import json; print(json.dumps({'sys_path0': first, 'platform_file': platform.__file__,\n"
        "  'system': platform.system(), 'machine': platform.machine(), 'torch': torch.__version__,\n"
        "  'ray': ray.__version__, 'mlflow': mlflow.__version__, 'config_file': cfg.__file__}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run([sys.executable, "-c", code, str(REPO)], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["sys_path0"] == str(REPO)
    stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()
    assert Path(out["platform_file"]).resolve().parent == stdlib  # the standard module, not ./platform
    assert (out["system"], out["machine"]) == (std_platform.system(), std_platform.machine())
    assert out["torch"].startswith("2.14.1") and out["ray"] == "2.60.0" and out["mlflow"] == "3.17.2"
    assert Path(out["config_file"]).resolve() == REPO / "platform" / "config.py"


def _copy_source(dst: Path) -> Path:
    """The checkout without venv, VCS and build leftovers: building in a copy keeps concurrent
    builds (other test sessions, `make`) from racing on the repo's build/ and *.egg-info."""
    ignore = shutil.ignore_patterns(".venv", ".git", "build", "dist", "*.egg-info", ".cache", "__pycache__",
                                    "runs", "data", "mlruns", ".pytest_cache", "bench")
    shutil.copytree(REPO, dst, ignore=ignore, symlinks=True)
    return dst


@pytest.mark.slow
def test_wheel_contains_the_three_folders_and_presets(tmp_path):
    src = _copy_source(tmp_path / "src")
    out = tmp_path / "wheel"
    r = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(src)],
        capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    (wheel,) = out.glob("transgan_lab-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for must in ("transgan_lab/__init__.py", "transgan_lab/__main__.py",
                 "transgan_lab/platform/config.py", "transgan_lab/platform/cli.py",
                 "transgan_lab/trainers/__init__.py", "transgan_lab/trainers/data.py",
                 "transgan_lab/trainers/hashing.py", "transgan_lab/trainers/models/__init__.py",
                 "transgan_lab/trainers/metrics/__init__.py"):
        assert must in names, must
    presets = {Path(n).name for n in names if n.startswith("transgan_lab/presets/") and n.endswith(".yaml")}
    assert presets == {p.name for p in (REPO / "experiments" / "configs").glob("*.yaml")} and "digits-tiny.yaml" in presets
    assert not any(n.startswith("platform/") or n == "transgan_lab/platform/__init__.py" for n in names)
    top = {n.split("/")[0] for n in names}
    assert top == {"transgan_lab", wheel.name.split("-")[0] + "-" + wheel.name.split("-")[1] + ".dist-info"}
    entry = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "transgan-lab = transgan_lab.platform.cli:main" in entry

    # Installed from the wheel alone (unpacked, as pip installs a pure-Python wheel), not the checkout:
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = (
        "import json, transgan_lab, transgan_lab.platform.config as C, transgan_lab.trainers.data as D\n"
        "print(json.dumps({'pkg': transgan_lab.__file__, 'presets': C.preset_names(), 'data': D.__file__,\n"
        "  'tiny': C.load_config('digits-tiny').data.resolution}))"
    )
    env = dict(os.environ, PYTHONPATH=str(site))
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert Path(got["pkg"]).is_relative_to(site) and Path(got["data"]).is_relative_to(site)
    assert "digits-tiny" in got["presets"] and got["tiny"] == 16
