"""Fit every configured candidate on the whole validated frame (one artifact folder each)."""

# No `from __future__ import annotations`: kfp reads the real annotations of the signature.
from kfp.dsl import Dataset, Input, Model, Output


def train_challenger(
    env: str,
    overlay: str,
    frame: Input[Dataset],
    candidates: Output[Model],
) -> None:
    from salesloop.pipeline.steps import train_step

    summary = train_step(env, frame.path, candidates.path, overlay=overlay)
    candidates.metadata.update({"candidates": sorted(summary)})
