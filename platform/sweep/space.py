"""A search space as the sweep uses it: named spaces (``spaces.py``), sampled parameters set into a
config, the check of every config a space can produce, and readable trial labels.

A space is a define-by-run function ``space(trial, base) -> dict | None`` over dotted config keys;
the preset itself is its first point (``paper_point``). Every config the space can produce is
checked before Ray starts (a sample of draws plus the paper point), and each trial validates its
own config again.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Callable

from transgan_lab.platform.config import ConfigError, from_dict
from transgan_lab.platform.config.dotted import DottedKeyError, set_dotted

TRIAL_NUMBER = "_trial_number"  # config key carrying the Optuna trial number (0 = the preset itself)


def get_space(name: str) -> tuple[Callable, Callable]:
    """(space(trial, base), paper_point(base)) of a named space in ``transgan_lab.platform.sweep.spaces``."""
    from transgan_lab.platform.sweep import spaces as module

    spaces = module.SPACES
    if name not in spaces:
        raise ConfigError(
            f"unknown search space {name!r}: choose one of {sorted(spaces)} (platform/sweep/spaces.py), "
            "e.g. --space digits or --set sweep.space=cifar"
        )
    return spaces[name][0], functools.partial(module.paper_point, name)


def apply_params(base: dict, params: dict) -> dict:
    """A config dict with sampled ``{"dotted.key": value}`` set (``model.g.depths.0`` sets a list item)."""
    out = copy.deepcopy(base)
    for key, value in params.items():
        try:
            set_dotted(out, key, value)
        except DottedKeyError as e:
            if e.problem.startswith("is not an index"):
                raise ConfigError(
                    f"search space parameter {key!r}: {e.part!r} {e.problem}; fix the name in platform/sweep/spaces.py"
                ) from None
            raise ConfigError(
                f"search space parameter {key!r} names no config field ({e.part!r} unknown); "
                "use dotted config keys such as model.g.embed_dim in platform/sweep/spaces.py"
            ) from None
    return out


def _ask_params(study, space_fn: Callable, base: dict, fixed: dict | None = None) -> dict:
    """One draw of a define-by-run space from an in-memory Optuna study (the preflight check)."""
    if fixed:
        study.enqueue_trial(fixed)
    trial = study.ask()
    ret = space_fn(trial, base) or {}
    params = {**trial.params, **ret}
    study.tell(trial, 0.0)
    return params


def check_space(
    base: dict,  # the resolved preset as a plain dict
    space: str,  # name in platform/sweep/spaces.py
    *,
    seed: int = 0,  # sampler seed of the check
    draws: int = 64,  # random draws checked besides the paper point
) -> dict:
    """Validate the paper point and ``draws`` random configs of the space; returns the paper point.

    Raises ConfigError naming the bad sampled values and the validation error: bad values fail
    here, before a Ray runtime or a tracking run exists.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space_fn, paper_fn = get_space(space)
    paper = paper_fn(base)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    for i in range(draws + 1):
        params = _ask_params(study, space_fn, base, fixed=paper if i == 0 else None)
        try:
            from_dict(apply_params(base, params))
        except ConfigError as e:
            what = "the preset's own point" if i == 0 else f"draw {i}"
            raise ConfigError(
                f"search space {space!r} produces an invalid config ({what}: "
                f"{json.dumps(params, sort_keys=True, default=str)}): {e}; narrow that dimension in "
                "platform/sweep/spaces.py or pick a preset the space fits"
            ) from None
    return paper


def numbered_space(trial, *, space_fn: Callable, base: dict) -> dict:
    """The space's values plus the Optuna trial number: a readable, restore-stable trial label."""
    return {**(space_fn(trial, base) or {}), TRIAL_NUMBER: trial.number}


def trial_label(config: dict | None, trial_id: str) -> str:
    """``t<NNN>`` from the Optuna trial number (the Tune trial id when there is none)."""
    number = (config or {}).get(TRIAL_NUMBER)
    return f"t{int(number):03d}" if number is not None else trial_id
