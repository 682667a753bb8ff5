"""Packaging: `platform/` never shadows the standard module, the wheel holds the three folders,
and a plain (non-editable) install works away from the checkout.

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
    assert (REPO / "platform" / "cli.py").is_file()
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
    r = subprocess.run(
        [sys.executable, "-c", code, str(REPO)], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["sys_path0"] == str(REPO)
    stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()
    assert Path(out["platform_file"]).resolve().parent == stdlib  # the standard module, not ./platform
    assert (out["system"], out["machine"]) == (std_platform.system(), std_platform.machine())
    assert out["torch"].startswith("2.14.1") and out["ray"] == "2.60.0" and out["mlflow"] == "3.17.2"
    assert Path(out["config_file"]).resolve() == REPO / "platform" / "config" / "__init__.py"


def _copy_source(dst: Path) -> Path:
    """The checkout without venv, VCS and build leftovers: building in a copy keeps concurrent
    builds (other test sessions, `make`) from racing on the repo's build/ and *.egg-info."""
    anywhere = shutil.ignore_patterns(
        ".venv", ".git", "build", "dist", "*.egg-info", ".cache", "__pycache__", ".pytest_cache"
    )
    at_root = {"runs", "data", "mlruns", "bench"}  # run outputs and datasets (trainers/data/ is source)

    def ignore(folder: str, names: list[str]) -> set[str]:
        return set(anywhere(folder, names)) | (at_root & set(names) if Path(folder) == REPO else set())

    shutil.copytree(REPO, dst, ignore=ignore, symlinks=True)
    return dst


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The project's wheel, built from a copy of the checkout."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = _copy_source(tmp / "src")
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp / "dist"),
            str(src),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    (built,) = (tmp / "dist").glob("transgan_lab-*.whl")
    return built


@pytest.mark.slow
def test_wheel_contains_the_three_folders_and_presets(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for must in (
        "transgan_lab/__main__.py",
        "transgan_lab/metric_registry.py",
        "transgan_lab/tracking_client.py",
        "transgan_lab/platform/config/__init__.py",
        "transgan_lab/platform/cli.py",
        "transgan_lab/platform/sweep/spaces.py",
        "transgan_lab/platform/tracking/__init__.py",
        "transgan_lab/trainers/__init__.py",
        "transgan_lab/trainers/data/__init__.py",
        "transgan_lab/trainers/hashing.py",
        "transgan_lab/trainers/models/__init__.py",
        "transgan_lab/trainers/metrics/__init__.py",
        "transgan_lab/analysis/tables/__init__.py",
    ):
        assert must in names, must
    # Every source file of the mapped folders is in the wheel: no package was left off pyproject's list.
    mapped = {
        "platform": "transgan_lab/platform",
        "trainers": "transgan_lab/trainers",
        "analysis": "transgan_lab/analysis",
        "src/transgan_lab": "transgan_lab",
    }
    for folder, pkg in mapped.items():
        for f in (REPO / folder).rglob("*.py"):
            assert f"{pkg}/{f.relative_to(REPO / folder).as_posix()}" in names, f
    presets = {Path(n).name for n in names if n.startswith("transgan_lab/presets/") and n.endswith(".yaml")}
    assert (
        presets == {p.name for p in (REPO / "experiments" / "configs").glob("*.yaml")} and "digits-tiny.yaml" in presets
    )
    # Namespace portions, as in the checkout: the import root and platform/ have no __init__.py.
    assert "transgan_lab/__init__.py" not in names and "transgan_lab/platform/__init__.py" not in names
    assert not any(n.startswith("platform/") for n in names)
    top = {n.split("/")[0] for n in names}
    assert top == {"transgan_lab", wheel.name.split("-")[0] + "-" + wheel.name.split("-")[1] + ".dist-info"}
    entry = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "transgan-lab = transgan_lab.platform.cli:main" in entry


@pytest.mark.slow
def test_wheel_install_runs_the_cli_away_from_the_checkout(wheel, tmp_path, capsys):
    """`pip install <wheel>` (not editable) into a fresh venv, run from a folder outside the
    checkout: the console script lists the presets, summarises a model and dry-runs a sweep (its
    search space found by name inside the installed package) exactly as the checkout does."""
    from transgan_lab.platform.cli import main

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(venv / "bin" / "python"),
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            str(wheel),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    # The dependencies come from this test's environment; a .pth line only adds the folder (the
    # .pth files inside it, the checkout's editable-install hook among them, are not run).
    (site,) = (venv / "lib").glob("python3*/site-packages")
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}

    def run(*argv: str) -> str:
        p = subprocess.run(
            [str(venv / "bin" / "transgan-lab"), *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
        )
        assert p.returncode == 0, (argv, p.stderr[-3000:])
        return p.stdout

    probe = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import json, transgan_lab, transgan_lab.platform.cli as c, transgan_lab.platform.sweep.spaces as s\n"
            "print(json.dumps([*transgan_lab.__path__, c.__file__, s.__file__]))",
        ],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert probe.returncode == 0, probe.stderr[-3000:]
    assert all(Path(p).is_relative_to(site) for p in json.loads(probe.stdout)), (
        probe.stdout
    )  # nothing from the checkout

    def in_checkout(*argv: str) -> str:
        assert main(list(argv)) == 0
        return capsys.readouterr().out

    presets = run("config", "list")
    listed = [line.split()[0] for line in presets.splitlines()]  # name, resolution, sizes, description
    assert listed == sorted(p.stem for p in (REPO / "experiments" / "configs").glob("*.yaml"))
    summary = run("summary", "digits-tiny")
    assert summary.startswith("digits-tiny: G ") and summary == in_checkout("summary", "digits-tiny")
    out = tmp_path / "out"
    dry = run("sweep", "digits-tiny", "--dry-run", "--out", str(out))
    assert "# sweep digits-tiny-digits-" in dry and "trials of space 'digits'; first point (the preset):" in dry
    assert dry == in_checkout("sweep", "digits-tiny", "--dry-run", "--out", str(out))
    assert not out.exists() and not any(cwd.iterdir())  # a dry run starts nothing and writes nothing


def _makefile_var(name: str) -> str:
    """A `NAME := value` line of the Makefile, so the test installs exactly as `make` does."""
    for line in (REPO / "Makefile").read_text().splitlines():
        key, sep, value = line.partition(":=")
        if sep and key.strip() == name:
            return value.strip()
    raise AssertionError(f"Makefile defines no {name}")


@pytest.mark.slow
def test_editable_install_prints_no_warning(tmp_path):
    """`make demo`'s install step (`pip install -e .` under the Makefile's one documented filter)
    into a scratch venv prints pip's progress and no build warning: no `Warning`, no `!!` block.
    The dependencies are this environment's (a .pth line), so only the project itself is built."""
    src = _copy_source(tmp_path / "src")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    (site,) = (venv / "lib").glob("python3*/site-packages")
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env_key, _, env_value = _makefile_var("QUIET_EDITABLE").partition("=")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONWARNINGS")}
    env[env_key] = env_value.strip('"')
    cmd = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install"]
    cmd += ["--no-deps", "--no-build-isolation", "--no-index", "-e", str(src)]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    log = r.stdout + r.stderr
    assert r.returncode == 0, log[-3000:]
    assert "Successfully installed transgan-lab" in log
    noisy = [line for line in log.splitlines() if "warning" in line.lower() or line.strip() == "!!"]
    assert noisy == [], log
    # The filter drops exactly setuptools' editable-install note: without it, that one block shows.
    env.pop(env_key)
    r = subprocess.run([*cmd, "--force-reinstall"], env=env, capture_output=True, text=True, timeout=600)
    blocks = (r.stdout + r.stderr).count("Warning: ")
    assert r.returncode == 0 and blocks == 1 and "Editable installation." in r.stderr, r.stderr[-3000:]
