"""The Predictor port and the request-size arithmetic shared by its implementations."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class PredictionBatch:
    """Predictions in request order.

    Every prediction carries ``model_version`` (the version that produced it: during a canary or a
    swap, chunks of one batch may come from different versions). ``model_version`` of the batch is
    the version that served most of it, for callers that record one version per batch.
    """

    predictions: list[dict[str, Any]]
    model_version: str

    @property
    def versions(self) -> dict[str, int]:
        return dict(Counter(str(p.get("model_version")) for p in self.predictions))


@runtime_checkable
class Predictor(Protocol):
    def predict(self, instances: list[dict[str, Any]]) -> PredictionBatch: ...


def majority_version(predictions: Sequence[Mapping[str, Any]], default: str = "") -> str:
    counts = Counter(str(p.get("model_version")) for p in predictions if p.get("model_version"))
    if not counts:
        return default
    best = max(counts.values())
    return sorted(v for v, c in counts.items() if c == best)[0]


# -- request size --------------------------------------------------------------------------------
# google-cloud-aiplatform's REST transport sends the PredictRequest as protobuf JSON with indent=2
# (every array element on its own, indented line, integers as doubles): ~3x the compact JSON. The
# endpoint limit applies to what is sent, so chunks are sized by that rendering, computed
# arithmetically (an actual MessageToJson per candidate chunk would cost as much as the request).


def _scalar_size(value: Any) -> int:
    if value is None:
        return 4
    if value is True:
        return 4
    if value is False:
        return 5
    if isinstance(value, (int, float)):
        return len(repr(float(value)))
    if isinstance(value, str):
        return len(json.dumps(value, ensure_ascii=False).encode())
    raise TypeError(f"not JSON: {type(value).__name__}")


def pretty_size(value: Any, depth: int = 0) -> int:
    """Bytes of ``value`` as protobuf's ``MessageToJson`` (indent=2) renders it at ``depth``."""
    if isinstance(value, Mapping):
        if not value:
            return 2
        inner = 2 * (depth + 1)
        total = 2 + (len(value) - 1) + 1 + 2 * depth  # braces, commas, closing newline+indent
        for key, item in value.items():
            total += 1 + inner + _scalar_size(str(key)) + 2 + pretty_size(item, depth + 1)
        return total
    if isinstance(value, (list, tuple)):
        n = len(value)
        if n == 0:
            return 2
        inner = 2 * (depth + 1)
        total = 2 + (n - 1) + 1 + 2 * depth + n * (1 + inner)
        if all(not isinstance(v, (Mapping, list, tuple)) for v in value):
            return total + sum(map(_scalar_size, value))
        return total + sum(pretty_size(v, depth + 1) for v in value)
    return _scalar_size(value)


def instance_cost(instance: Mapping[str, Any]) -> int:
    """Bytes one instance adds to the ``instances`` array of a request body."""
    return 1 + 4 + pretty_size(instance, 2) + 1  # newline, indent, the instance, its comma


def request_overhead(parameters: Mapping[str, Any] | None) -> int:
    """Bytes of a request body besides its instances."""
    size = len('{\n  "instances": [\n  ]\n}')
    if parameters:
        size += len(',\n  "parameters": ') + pretty_size(parameters, 1)
    return size


def chunk_instances(
    instances: Sequence[Mapping[str, Any]],
    max_bytes: int,
    parameters: Mapping[str, Any] | None = None,
) -> list[list[Mapping[str, Any]]]:
    """Consecutive chunks whose request body stays under ``max_bytes``; order is preserved."""
    budget = max_bytes - request_overhead(parameters)
    chunks: list[list[Mapping[str, Any]]] = []
    current: list[Mapping[str, Any]] = []
    used = 0
    for inst in instances:
        cost = instance_cost(inst)
        if cost > budget:
            raise ValueError(
                f"instance {inst.get('series_id')!r} alone needs {cost} bytes, over the "
                f"{max_bytes}-byte request limit; send less history"
            )
        if current and used + cost > budget:
            chunks.append(current)
            current, used = [], 0
        current.append(inst)
        used += cost
    if current:
        chunks.append(current)
    return chunks
