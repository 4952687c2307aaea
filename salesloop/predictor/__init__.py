"""The Predictor port: a Vertex endpoint (or the local server) or the model in-process."""

from __future__ import annotations

from pathlib import Path

from salesloop.config import Settings
from salesloop.predictor.base import PredictionBatch, Predictor, chunk_instances

__all__ = ["PredictionBatch", "Predictor", "chunk_instances", "open_predictor"]


def open_predictor(settings: Settings, registry_dir: Path | str | None = None) -> Predictor:
    """The predictor this environment's settings ask for (``predictor.kind``)."""
    if settings.predictor.kind == "in_process":
        if registry_dir is None:
            raise ValueError("predictor.kind=in_process needs the registry folder")
        from salesloop.predictor.in_process import InProcessPredictor

        return InProcessPredictor(registry_dir, settings.predictor.endpoint_id)
    from salesloop.predictor.endpoint import EndpointPredictor

    return EndpointPredictor(settings)
