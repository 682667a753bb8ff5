"""platform/ray_internals.py is the one place that uses Ray internals; these tests fail loudly when
Ray is upgraded, so that module is re-checked against the new release before anything else breaks
silently. (What it is used for is tested for real in test_fault_tolerance.py: the placement-group
reaper on a live runtime.)"""

from __future__ import annotations

import re
from pathlib import Path

import ray

from transgan_lab.platform import ray_internals

REPO = Path(__file__).resolve().parents[1]


def test_ray_is_the_release_the_adapter_was_checked_against():
    assert ray.__version__ == ray_internals.RAY_VERSION, (
        f"Ray {ray.__version__} is installed, but platform/ray_internals.py was checked against "
        f"{ray_internals.RAY_VERSION}: check every private name it uses against the new release "
        "(this file's other tests name them), then update RAY_VERSION"
    )


def test_the_private_names_the_adapter_uses_still_exist():
    from ray._private import services
    from ray._private.state import state
    from ray.core.generated import gcs_pb2

    assert callable(services.find_bootstrap_address)
    assert callable(state._connect_and_get_accessor)
    fields = set(gcs_pb2.PlacementGroupTableData.DESCRIPTOR.fields_by_name)
    assert {
        "placement_group_id",
        "creator_job_id",
        "creator_actor_id",
        "creator_actor_dead",
        "is_detached",
        "state",
    } <= fields, fields
    assert gcs_pb2.PlacementGroupTableData.REMOVED


def test_no_other_module_uses_ray_internals():
    """`ray._private`, generated protobufs and the ResultGrid's private analysis appear nowhere else."""
    pattern = re.compile(r"ray\._private|ray\.core\.generated|_experiment_analysis")
    adapter = REPO / "platform" / "ray_internals.py"
    files = [
        p
        for folder in ("src", "platform", "trainers", "analysis", "experiments", "bench")
        for p in (REPO / folder).rglob("*.py")
    ]
    hits = [
        f"{p.relative_to(REPO)}:{i}"
        for p in files
        if p != adapter
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert not hits, hits
    assert pattern.search(adapter.read_text())
