"""The training pipeline: extract → validate → train → backtest → gate → register → canary rollout.

One definition for both runners: ``kfp.local`` (SubprocessRunner, offline, in the current
environment) and Vertex AI Pipelines (the YAML from :func:`compile_pipeline`). Caching is off for
every task: the extract reads a warehouse whose content changes between runs with identical
parameters, so a cache hit would silently retrain on stale data.

A rejected challenger is still registered (with status and reason); only an accepted one goes
through the canary rollout (``dsl.If`` on the gate's status).
"""

# No `from __future__ import annotations`: kfp reads the real annotations of the pipeline.
from pathlib import Path
from typing import Any, NamedTuple

from kfp import compiler, dsl

from training.components import DEFAULT_IMAGE, build

PIPELINE_NAME = "salesloop-training"


def make_pipeline(image: str = DEFAULT_IMAGE) -> Any:
    """The pipeline function with components bound to ``image``."""
    c = build(image)

    @dsl.pipeline(
        name=PIPELINE_NAME,
        description="Train, backtest, gate, register and roll out a sales-forecast model version.",
    )
    def training_pipeline(
        env: str = "local",
        overlay: str = "",
        warehouse_path: str = "",
        end_date: str = "",
        history_days: int = 0,
        series_filter: str = "",
        registry_root: str = "",
        endpoint_id: str = "",
    ) -> NamedTuple("Outputs", [("version", str), ("status", str)]):  # type: ignore[valid-type]
        extract = c["extract_frame"](
            env=env,
            overlay=overlay,
            warehouse_path=warehouse_path,
            end_date=end_date,
            history_days=history_days,
            series_filter=series_filter,
        )
        validate = c["validate_frame"](
            env=env,
            overlay=overlay,
            end_date=extract.outputs["end_date"],
            raw=extract.outputs["raw"],
        )
        train = c["train_challenger"](env=env, overlay=overlay, frame=validate.outputs["frame"])
        backtest = c["backtest_models"](
            env=env,
            overlay=overlay,
            registry_root=registry_root,
            frame=validate.outputs["frame"],
            candidates=train.outputs["candidates"],
        )
        gate = c["gate_challenger"](env=env, overlay=overlay, backtest=backtest.outputs["backtest"])
        register = c["register_version"](
            env=env,
            overlay=overlay,
            registry_root=registry_root,
            warehouse_path=warehouse_path,
            candidates=train.outputs["candidates"],
            backtest=backtest.outputs["backtest"],
            decision=gate.outputs["decision"],
        )
        with dsl.If(gate.outputs["Output"] == "accepted", name="gate-accepted"):
            rollout = c["rollout_version"](
                env=env,
                overlay=overlay,
                registry_root=registry_root,
                endpoint_id=endpoint_id,
                warehouse_path=warehouse_path,
                version=register.output,
                frame=validate.outputs["frame"],
            )
        for task in (extract, validate, train, backtest, gate, register, rollout):
            task.set_caching_options(False)
        outputs = NamedTuple("outputs", [("version", str), ("status", str)])  # noqa: UP014
        return outputs(register.output, gate.outputs["Output"])

    return training_pipeline


def compile_pipeline(path: Path | str, image: str = DEFAULT_IMAGE) -> Path:
    """Write the pipeline spec YAML (the template Vertex AI Pipelines runs)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(pipeline_func=make_pipeline(image), package_path=str(path))
    return path
