"""Accept or reject the chosen challenger against SeasonalNaive and the champion (thresholds in settings)."""

# No `from __future__ import annotations`: kfp reads the real annotations of the signature.
from typing import NamedTuple

from kfp.dsl import Artifact, Input, Output


def gate_challenger(
    env: str,
    overlay: str,
    backtest: Input[Artifact],
    decision: Output[Artifact],
) -> NamedTuple("Outputs", [("status", str), ("reason", str)]):  # type: ignore[valid-type]
    from collections import namedtuple
    from pathlib import Path

    from salesloop.pipeline.steps import BACKTEST_FILE, gate_step

    result = gate_step(
        env, str(Path(backtest.path) / BACKTEST_FILE), decision.path, overlay=overlay
    )
    decision.metadata.update({"status": result.status})
    outputs = namedtuple("outputs", ["status", "reason"])
    return outputs(result.status, result.reason)
