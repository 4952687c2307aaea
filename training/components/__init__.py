"""One component per file, named verb_noun; :func:`build` turns them into kfp components."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kfp import dsl

from training.components.backtest_models import backtest_models
from training.components.extract_frame import extract_frame
from training.components.gate_challenger import gate_challenger
from training.components.register_version import register_version
from training.components.rollout_version import rollout_version
from training.components.train_challenger import train_challenger
from training.components.validate_frame import validate_frame

FUNCTIONS: dict[str, Callable[..., Any]] = {
    f.__name__: f
    for f in (
        extract_frame,
        validate_frame,
        train_challenger,
        backtest_models,
        gate_challenger,
        register_version,
        rollout_version,
    )
}

DEFAULT_IMAGE = "python:3.11-slim"


def build(image: str = DEFAULT_IMAGE) -> dict[str, Any]:
    """The kfp components for one image (the image is per environment, so built at compile time)."""
    return {
        name: dsl.component(func, base_image=image, install_kfp_package=False)
        for name, func in FUNCTIONS.items()
    }
