"""Canary rollout of an accepted version; promotes it or rolls back to the champion (recorded on the
version and in ``model_versions``)."""

# No `from __future__ import annotations`: kfp reads the real annotations of the signature.
from kfp.dsl import Artifact, Dataset, Input, Output


def rollout_version(
    env: str,
    overlay: str,
    registry_root: str,
    endpoint_id: str,
    warehouse_path: str,
    version: str,
    frame: Input[Dataset],
    outcome: Output[Artifact],
) -> str:
    from salesloop.pipeline.steps import rollout_step

    result = rollout_step(
        env,
        version,
        registry_root,
        endpoint_id,
        frame.path,
        outcome.path,
        overlay=overlay,
        warehouse_path=warehouse_path,
    )
    outcome.metadata.update({"promoted": result["promoted"], "rolled_back": result["rolled_back"]})
    return "promoted" if result["promoted"] else "rolled_back"
