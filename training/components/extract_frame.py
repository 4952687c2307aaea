"""Extract the training rows from the warehouse (SQL pushed down: history window, series filter)."""

# No `from __future__ import annotations`: kfp reads the real annotations of the signature.
from typing import NamedTuple

from kfp.dsl import Dataset, Output


def extract_frame(
    env: str,
    overlay: str,
    warehouse_path: str,
    end_date: str,
    history_days: int,
    series_filter: str,
    raw: Output[Dataset],
) -> NamedTuple("Outputs", [("rows", int), ("end_date", str)]):  # type: ignore[valid-type]
    from collections import namedtuple

    from salesloop.pipeline.steps import extract_step

    out = extract_step(
        env,
        raw.path,
        overlay=overlay,
        warehouse_path=warehouse_path,
        end_date=end_date,
        history_days=history_days,
        series_filter=series_filter,
    )
    raw.metadata.update(out)
    outputs = namedtuple("outputs", ["rows", "end_date"])
    return outputs(int(out["rows"]), str(out["end_date"]))
