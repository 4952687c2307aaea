"""Run the pipeline on this machine with kfp's local runner (offline, in the current environment).

``SubprocessRunner(use_venv=False)`` runs each component in a subprocess of this interpreter, which
already has ``salesloop`` installed; kfp passes artifacts through files under ``pipeline_root``,
exactly as on Vertex AI, so the same component code and wiring is exercised.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from kfp import local

from training.pipeline import make_pipeline


def run_local(
    *,
    env: str = "local",
    pipeline_root: Path | str,
    registry_root: Path | str,
    endpoint_id: str = "",
    overlay: Path | str | None = None,
    warehouse_path: Path | str | None = None,
    end_date: str = "",
    history_days: int = 0,
    series_filter: str = "",
) -> dict[str, Any]:
    """Run the whole pipeline; returns the registered version and the gate status."""
    Path(pipeline_root).mkdir(parents=True, exist_ok=True)
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(Path(pipeline_root).resolve()),
        raise_on_error=True,
    )
    # The component subprocesses find the repository's environments/ through this variable
    # whatever their working directory.
    os.environ.setdefault(
        "SALESLOOP_ENVIRONMENTS", str(Path(__file__).resolve().parents[1] / "environments")
    )
    task = make_pipeline()(
        env=env,
        overlay=str(Path(overlay).resolve()) if overlay else "",
        warehouse_path=str(Path(warehouse_path).resolve()) if warehouse_path else "",
        end_date=end_date,
        history_days=history_days,
        series_filter=series_filter,
        registry_root=str(Path(registry_root).resolve()),
        endpoint_id=endpoint_id,
    )
    return {"version": task.outputs["version"], "status": task.outputs["status"]}
