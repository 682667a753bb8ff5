"""The Ray internals this project uses, because no public API gives what it needs. Nothing else in
the project touches ``ray._private`` or generated protobufs; ``tests/test_ray_internals.py`` fails
loudly when Ray is upgraded, so this module is re-checked then.

Checked against Ray 2.60.0 (``RAY_VERSION``):

- ``placement_groups()``: the GCS placement-group table with each group's creator (job, actor,
  whether that actor is dead) and whether it is detached. The public ``placement_group_table()``
  and the State API's ``list_placement_groups`` leave out the creating actor and its liveness, and
  the State API goes through the dashboard, which misses its deadline on a loaded machine: exactly
  when the sweep needs to free the groups of dead trials (``sweep.callbacks``).
- ``local_cluster_address()``: the address of a cluster started on this node with ``ray start``
  (what ``ray.init(address="auto")`` would join), without connecting to it. Public Ray only
  connects; the experiment scripts need to know first whether to join or to start their own.
"""

from __future__ import annotations

from dataclasses import dataclass

RAY_VERSION = "2.60.0"  # the Ray release this module was checked against


@dataclass(frozen=True)
class PlacementGroupRecord:
    id_hex: str  # the placement group's id
    creator_job_hex: str  # the job that created it
    creator_actor_nil: bool  # created by a driver (or a task), not by an actor
    creator_actor_dead: bool  # its creating actor has died
    detached: bool  # outlives its creator by design
    removed: bool  # already removed


def placement_groups() -> list[PlacementGroupRecord]:
    """Every placement group the GCS knows (needs a connected Ray runtime)."""
    import ray
    from ray._private.state import state
    from ray.core.generated import gcs_pb2

    records = []
    for raw in state._connect_and_get_accessor().get_placement_group_table():
        pg = gcs_pb2.PlacementGroupTableData.FromString(raw)
        records.append(
            PlacementGroupRecord(
                id_hex=ray.PlacementGroupID(pg.placement_group_id).hex(),
                creator_job_hex=ray.JobID(pg.creator_job_id).hex(),
                creator_actor_nil=ray.ActorID(pg.creator_actor_id).is_nil(),
                creator_actor_dead=bool(pg.creator_actor_dead),
                detached=bool(pg.is_detached),
                removed=pg.state == gcs_pb2.PlacementGroupTableData.REMOVED,
            )
        )
    return records


def remove_placement_group(id_hex: str) -> None:
    """Remove a placement group by its id (public ``remove_placement_group`` takes a handle)."""
    import ray
    from ray.util.placement_group import PlacementGroup
    from ray.util.placement_group import remove_placement_group as remove

    remove(PlacementGroup(ray.PlacementGroupID(bytes.fromhex(id_hex))))


def local_cluster_address() -> str | None:
    """Address of a Ray cluster running on this node, or None (connects to nothing)."""
    from ray._private.services import find_bootstrap_address

    return find_bootstrap_address(None) or None
