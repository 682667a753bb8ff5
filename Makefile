# `make demo` and `make test` each create .venv and install the project when it is missing or
# stale (the stamp is newer than pyproject.toml), then run.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

# Keep every tool's caches and state out of $HOME and inside the checkout.
export RAY_USAGE_STATS_ENABLED := 0
export MLFLOW_DISABLE_TELEMETRY := true
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER := 0
export MPLCONFIGDIR := $(CURDIR)/.cache/matplotlib
export TORCHINDUCTOR_CACHE_DIR := $(CURDIR)/.cache/torchinductor

.PHONY: demo test lint format install bench clean

# setuptools ends every editable install of a `package-dir` mapping like ours with a note ("Editable
# installation ... folders in your working directory with the same name as your package may take
# precedence"): the import root is `transgan_lab` and no folder of that name exists at the repository
# root, so the note is not ours to act on. PYTHONWARNINGS (the filter setuptools documents for its
# warnings) drops that one message; every other build warning still shows.
QUIET_EDITABLE := PYTHONWARNINGS="ignore:Editable installation:UserWarning"

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24" "setuptools>=77" wheel
	$(QUIET_EDITABLE) $(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) experiments/sweep_digits.py --demo

# ruff, pinned in the dev extras, configured in pyproject.toml: lint rules and the one code format.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# The loopback-cluster test runs `ray up`/`ray down`, which stop every Ray process on the machine,
# so it runs in a second pytest session after everything else.
test: $(STAMP)
	$(PY) -m pytest tests -m "not cluster"
	$(PY) -m pytest tests -m cluster

bench: $(STAMP)
	$(PY) bench/train_step.py

clean:
	rm -rf $(VENV) .cache build *.egg-info
