"""Register the chosen candidate as a new immutable version: accepted (challenger alias) or rejected;
its row in the warehouse's ``model_versions`` table."""

# No `from __future__ import annotations`: kfp reads the real annotations of the signature.
from kfp.dsl import Artifact, Input, Model


def register_version(
    env: str,
    overlay: str,
    registry_root: str,
    warehouse_path: str,
    candidates: Input[Model],
    backtest: Input[Artifact],
    decision: Input[Artifact],
) -> str:
    from pathlib import Path

    from salesloop.pipeline.steps import BACKTEST_FILE, register_step

    return register_step(
        env,
        candidates.path,
        str(Path(backtest.path) / BACKTEST_FILE),
        decision.path,
        registry_root,
        overlay=overlay,
        warehouse_path=warehouse_path,
    )
