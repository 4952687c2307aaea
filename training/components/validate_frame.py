"""Validate the extracted rows (pandera schema, gaps, negatives, enough history); stop on failure."""

# No `from __future__ import annotations`: kfp reads the real annotations of the signature.
from kfp.dsl import Artifact, Dataset, Input, Output


def validate_frame(
    env: str,
    overlay: str,
    end_date: str,
    raw: Input[Dataset],
    frame: Output[Dataset],
    report: Output[Artifact],
) -> None:
    from salesloop.pipeline.steps import validate_step

    stats = validate_step(
        env, raw.path, frame.path, report.path, overlay=overlay, end_date=end_date
    )
    frame.metadata.update({k: v for k, v in stats.items() if isinstance(v, int | float | str)})
