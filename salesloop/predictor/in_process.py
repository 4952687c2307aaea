"""Predictions computed inside the caller: the scale-to-zero option.

No endpoint to keep warm (and pay for): the function loads the model(s) deployed on the endpoint
from the registry folder (or bucket mount) and predicts itself. It follows deployments the same
way the server does, with a cheap ``stat`` of the endpoint file per call, and uses the server's own
prediction path, so its output equals the endpoint's for the same instances.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from salesloop.predictor.base import PredictionBatch
from salesloop.serving.deployment import DeploymentWatcher, NoModelDeployed, predict_instances


class InProcessPredictor:
    def __init__(
        self,
        registry_dir: Path | str,
        endpoint_id: str,
        *,
        parameters: dict[str, Any] | None = None,
    ) -> None:
        self.watcher = DeploymentWatcher(registry_dir, endpoint_id)
        self.parameters = parameters

    @property
    def min_history(self) -> int | None:
        self.watcher.refresh()
        dep = self.watcher.current()
        return dep.min_history if dep is not None and dep.models else None

    def predict(self, instances: list[dict[str, Any]]) -> PredictionBatch:
        if not instances:
            return PredictionBatch([], "")
        self.watcher.refresh()
        dep = self.watcher.current()
        if dep is None:
            raise NoModelDeployed(f"nothing deployed on {self.watcher.endpoint_id}")
        chosen = dep.pick()
        predictions = predict_instances(chosen.model, instances, self.parameters)
        for p in predictions:
            p["model_version"] = chosen.version
        return PredictionBatch(predictions, chosen.version)
