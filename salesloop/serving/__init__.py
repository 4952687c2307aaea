"""The model server (Vertex custom-container contract + Vertex REST paths) and its deployment state."""

from salesloop.serving.deployment import (
    Deployment,
    DeploymentWatcher,
    LoadedModel,
    NoModelDeployed,
    StaticDeployment,
    predict_instances,
)
from salesloop.serving.server import ModelServer

__all__ = [
    "Deployment",
    "DeploymentWatcher",
    "LoadedModel",
    "ModelServer",
    "NoModelDeployed",
    "StaticDeployment",
    "predict_instances",
]
