"""Rolling-origin backtest of candidates, champion, SeasonalNaive and AutoETS on the same windows."""

# No `from __future__ import annotations`: kfp reads the real annotations of the signature.
from kfp.dsl import HTML, Artifact, Dataset, Input, Metrics, Model, Output


def backtest_models(
    env: str,
    overlay: str,
    registry_root: str,
    frame: Input[Dataset],
    candidates: Input[Model],
    backtest: Output[Artifact],
    metrics: Output[Metrics],
    report: Output[HTML],
) -> str:
    import math
    import shutil
    from pathlib import Path

    from salesloop.pipeline.steps import REPORT_FILE, backtest_step

    summary = backtest_step(
        env,
        frame.path,
        candidates.path,
        backtest.path,
        overlay=overlay,
        registry_root=registry_root,
    )
    shutil.copyfile(Path(backtest.path) / REPORT_FILE, report.path)
    # Logging the metrics writes the Metrics file (a Metrics output that is never written makes
    # the task uncacheable, see DESIGN.md).
    for model, values in summary["overall"].items():
        for key in ("rmsse", "mase", "wape", "bias", "coverage_80", "coverage_95"):
            value = values.get(key)
            if isinstance(value, int | float) and math.isfinite(value):
                metrics.log_metric(f"{model}.{key}", float(value))
    return str(summary["chosen"])
