"""Accept or reject the chosen challenger against SeasonalNaive and the champion (thresholds in settings)."""

# No `from __future__ import annotations`: kfp reads the real annotations of the signature.
from kfp.dsl import Artifact, Input, Output


def gate_challenger(
    env: str,
    overlay: str,
    backtest: Input[Artifact],
    decision: Output[Artifact],
) -> str:
    """Returns "accepted" or "rejected"; the reasons are in the ``decision`` artifact.

    The status is the plain return value on purpose: kfp.local (2.17) resolves ``dsl.If`` on a
    task's ``Output`` parameter but not on one field of a NamedTuple output.
    """
    from pathlib import Path

    from salesloop.pipeline.steps import BACKTEST_FILE, gate_step

    result = gate_step(
        env, str(Path(backtest.path) / BACKTEST_FILE), decision.path, overlay=overlay
    )
    decision.metadata.update({"status": result.status, "reason": result.reason[:500]})
    return result.status
