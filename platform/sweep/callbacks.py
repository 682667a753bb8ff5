"""The sweep driver's Tune callbacks: a line per trial event (the heartbeat), and the reaper of the
placement groups that stopped or failed trials leave behind.

Imported by the sweep driver only (it imports Ray Tune).
"""

from __future__ import annotations

import time

import ray
from ray.tune import Callback

from transgan_lab.platform import ray_internals
from transgan_lab.platform.sweep.space import trial_label


class Progress(Callback):
    """One line per trial event and per fresh evaluation (the sweep's heartbeat), and after each
    trial's end the whole sweep's bar and ETA. Plain lines, so a CI log reads the same as a terminal."""

    def __init__(self, primary: str, total: int, *, label=trial_label, tag: str = "sweep"):
        self.primary = primary  # the metric shown on every evaluation line
        self.total = total  # trials in the sweep
        self.label = label  # (trial config, trial id) -> the name a line shows
        self.tag = tag  # the line's prefix: [sweep mm:ss]
        self.t0 = time.monotonic()
        self.evals: dict[str, float] = {}

    def setup(self, **info):  # also after a restore, which unpickles this object
        self.t0 = time.monotonic()

    @staticmethod
    def _done(trials) -> int:
        return sum(t.status in ("TERMINATED", "ERROR") for t in trials)

    def _p(self, text: str) -> None:
        m, s = divmod(int(time.monotonic() - self.t0), 60)
        print(f"[{self.tag} {m:02d}:{s:02d}] {text}", flush=True)

    def on_trial_start(self, iteration, trials, trial, **info):
        self._p(f"{self.label(trial.config, trial.trial_id)} started ({self._done(trials)}/{self.total} done)")

    def on_trial_result(self, iteration, trials, trial, result, **info):
        evals = result.get("evals", 0)
        if evals and evals != self.evals.get(trial.trial_id):
            self.evals[trial.trial_id] = evals
            self._p(
                f"{self.label(trial.config, trial.trial_id)} {result.get('kimg', 0):6.2f} kimg  "
                f"{self.primary} {result.get(self.primary, float('nan')):9.3f}"
                f"  {result.get('img_per_s', float('nan')):7.1f} img/s"
            )

    def overall(self, done: int) -> str:
        """The sweep as a whole: a text bar of finished trials and the ETA at the pace so far."""
        width = 20
        filled = round(width * done / self.total) if self.total else width
        left = (time.monotonic() - self.t0) / done * (self.total - done) if done else None
        eta = "?" if left is None else "{}:{:02d}".format(*divmod(int(left), 60))
        return f"[{'#' * filled}{'.' * (width - filled)}] {done}/{self.total} trials done, ETA {eta}"

    def on_trial_complete(self, iteration, trials, trial, **info):
        done = self._done(trials) + 1
        self._p(f"{self.label(trial.config, trial.trial_id)} ended ({done}/{self.total} done)")
        self._p(self.overall(done))

    def on_trial_error(self, iteration, trials, trial, **info):
        done = self._done(trials) + 1
        self._p(f"{self.label(trial.config, trial.trial_id)} FAILED ({done}/{self.total} done): see {trial.local_path}")
        self._p(self.overall(done))


def reap_orphaned_placement_groups() -> list[str]:
    """Remove placement groups whose creating actor is dead; return their ids (hex).

    A placement group lives as long as the *job* that created it, not the actor: the worker-group
    group a Train controller actor creates inside a Tune trial outlives that trial when the trial is
    stopped by ASHA or fails and its controller dies without tidying up. Ray's own detached
    cleaner actor covers this only when its State API query answers in time (on a loaded machine it
    often does not), so the sweep driver, which owns the job, reaps them itself: a group that was
    created by an actor (the driver's own groups have no creating actor), whose creator is dead and
    which is not detached is reserved for nobody and is removed. Only this job's groups are
    touched (other jobs on a shared cluster are theirs to manage). Needs a connected Ray runtime.
    """
    job = ray.get_runtime_context().get_job_id()
    removed = []
    for pg in ray_internals.placement_groups():
        if pg.creator_job_hex != job or pg.removed or pg.detached:
            continue
        if pg.creator_actor_nil or not pg.creator_actor_dead:
            continue
        try:
            ray_internals.remove_placement_group(pg.id_hex)
        except Exception:  # noqa: BLE001 - removed meanwhile (by Ray's own cleaner): nothing left to do
            continue
        removed.append(pg.id_hex)
    return removed


class PlacementGroupReaper(Callback):
    """Frees the worker-group placement groups that stopped or failed trials leave behind.

    Without it a sweep with failures or ASHA stops slowly runs out of reservable CPUs/GPUs and
    then waits forever (see ``reap_orphaned_placement_groups``). Runs in the sweep driver after
    every trial end and at most every ``every_s`` seconds of the Tune loop.
    """

    def __init__(self, every_s: float = 2.0):
        self.every_s = every_s  # seconds between reaps while trials run
        self.last = 0.0

    def _reap(self) -> None:
        self.last = time.monotonic()
        reap_orphaned_placement_groups()

    def on_step_end(self, iteration, trials, **info):
        if time.monotonic() - self.last >= self.every_s:
            self._reap()

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._reap()

    def on_trial_error(self, iteration, trials, trial, **info):
        self._reap()
