"""What an endpoint serves right now, kept current without dropping a request.

The registry's ``endpoints/<id>.json`` says which versions are deployed with what traffic. A
:class:`DeploymentWatcher` polls that file (stat every ``poll_s``: inode, size, mtime), and on a
change loads every newly deployed version *completely* (unpickle, warm-up prediction) before it
replaces its :class:`Deployment` reference in one assignment. A request reads the reference once,
so it runs start to finish on one consistent deployment; old models are released when the last
request using them returns. A version that fails to load leaves the old deployment serving and is
retried on the next poll.

:func:`predict_instances` is the one path from instances to predictions, used by the HTTP server
and by the in-process predictor, so both give byte-identical answers.
"""

from __future__ import annotations

import itertools
import os
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from salesloop.model.base import ForecastModel, ModelMetadata, load_model
from salesloop.predictor.codec import InstanceError, decode_instances, encode_predictions
from salesloop.registry import read_endpoint_file

log = structlog.get_logger("serving")

MODEL_RESOURCE_ID = "salesloop-forecast"


class NoModelDeployed(RuntimeError):
    """The endpoint has no model with traffic (yet); callers should retry."""


@dataclass(frozen=True)
class LoadedModel:
    deployed_model_id: str
    version: str
    traffic: int
    model: ForecastModel

    @property
    def metadata(self) -> ModelMetadata:
        return self.model.metadata

    @property
    def display_name(self) -> str:
        return f"{MODEL_RESOURCE_ID}-{self.version}"


@dataclass(frozen=True)
class Deployment:
    endpoint_id: str
    models: tuple[LoadedModel, ...]
    updated_at: float = field(default_factory=time.time)
    _schedule: tuple[int, ...] = field(default=(), init=False, repr=False, compare=False)
    _counter: Iterator[int] = field(
        default_factory=itertools.count, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "_schedule", _smooth_schedule([m.traffic for m in self.models]))

    def pick(self) -> LoadedModel:
        """The model for the next request by the traffic split.

        Smooth weighted round robin over a cycle of (total traffic) requests: a 90/10 canary gets
        exactly one request in ten, evenly spaced, so a short health probe already sees it, and
        the sequence is deterministic (no random draws to make a test flaky).
        """
        if not self._schedule:
            raise NoModelDeployed(f"endpoint {self.endpoint_id} has no model with traffic")
        slot = next(self._counter) % len(self._schedule)
        return self.models[self._schedule[slot]]

    @property
    def min_history(self) -> int:
        return max((m.metadata.min_history for m in self.models), default=1)

    @property
    def horizon(self) -> int:
        return min((m.metadata.horizon for m in self.models), default=0)

    def labels(self) -> dict[str, str]:
        """Vertex endpoint labels (lowercase ``[a-z0-9_-]``) telling callers what to send."""
        if not self.models:
            return {}
        return {
            "salesloop-min-history": str(self.min_history),
            "salesloop-horizon": str(self.horizon),
            "salesloop-freq": self.models[0].metadata.freq.lower(),
        }


def _smooth_schedule(weights: Sequence[int]) -> tuple[int, ...]:
    """nginx's smooth weighted round robin, unrolled over one cycle of sum(weights) picks."""
    total = sum(w for w in weights if w > 0)
    current = [0] * len(weights)
    out = []
    for _ in range(total):
        for i, w in enumerate(weights):
            current[i] += max(w, 0)
        best = max(range(len(weights)), key=lambda i: (current[i], -i))
        current[best] -= total
        out.append(best)
    return tuple(out)


def predict_instances(
    model: ForecastModel, instances: Sequence[Any], parameters: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Instances → predictions with one model (``parameters``: optional levels, horizon)."""
    meta = model.metadata
    params = dict(parameters or {})
    try:
        levels = [int(x) for x in (params.get("levels") or meta.levels)]
        horizon = int(params.get("horizon") or meta.horizon)
    except (TypeError, ValueError):
        raise InstanceError("parameters.levels must be a list of ints, horizon an int") from None
    batch = decode_instances(instances, meta.freq)
    try:
        forecast = model.predict(batch.history, horizon, levels, batch.future)
    except ValueError as exc:
        raise InstanceError(str(exc)) from exc
    return encode_predictions(
        forecast, batch.order, batch.origins, levels, packed=bool(params.get("packed"))
    )


def warm_up(model: ForecastModel) -> None:
    """One tiny prediction so the first real request pays no lazy-initialisation cost."""
    n = max(model.metadata.min_history, 1)
    inst = {
        "series_id": "__warmup__",
        "store_id": "",
        "item_id": "",
        "dept_id": "",
        "cat_id": "",
        "state_id": "",
        "start": "2020-01-01",
        "units": [1.0] * n,
        "sell_price": [1.0] * n,
        "snap": [0] * n,
        "event": [0] * n,
    }
    predict_instances(model, [inst])


class DeploymentWatcher:
    """The deployment of one endpoint in a registry folder, swapped atomically on change."""

    def __init__(self, registry_root: Path | str, endpoint_id: str, *, poll_s: float = 0.5) -> None:
        self.registry_root = Path(registry_root)
        self.endpoint_id = endpoint_id
        self.path = self.registry_root / "endpoints" / f"{endpoint_id}.json"
        self.poll_s = poll_s
        self._current: Deployment | None = None
        self._stamp: tuple[int, int, int] | None = None
        self._cache: dict[str, ForecastModel] = {}
        self._refresh_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.swaps = 0

    def current(self) -> Deployment | None:
        return self._current

    def _file_stamp(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def refresh(self) -> bool:
        """Reload if the endpoint file changed; True when a new deployment was swapped in."""
        with self._refresh_lock:
            stamp = self._file_stamp()
            if stamp == self._stamp and (self._current is not None or stamp is None):
                return False
            deployed = read_endpoint_file(self.path)
            try:
                models = []
                for d in deployed:
                    model = self._cache.get(d.version)
                    if model is None:
                        started = time.perf_counter()
                        model = load_model(self.registry_root / "versions" / d.version)
                        warm_up(model)
                        log.info(
                            "model_loaded",
                            version=d.version,
                            endpoint_id=self.endpoint_id,
                            load_ms=round((time.perf_counter() - started) * 1000, 1),
                        )
                    models.append(LoadedModel(d.id, d.version, d.traffic, model))
            except Exception as exc:
                log.error("model_load_failed", endpoint_id=self.endpoint_id, error=str(exc))
                return False
            previous = self._current
            self._current = Deployment(self.endpoint_id, tuple(models))
            # Keep the previous generation loaded too: a rollback is then instant.
            keep = {m.version: m.model for m in (previous.models if previous else ())}
            keep.update({m.version: m.model for m in models})
            self._cache = keep
            self._stamp = stamp
            self.swaps += 1
            log.info(
                "deployment_swapped",
                endpoint_id=self.endpoint_id,
                traffic={m.version: m.traffic for m in models},
                previous=None
                if previous is None
                else {m.version: m.traffic for m in previous.models},
            )
            return True

    def start(self) -> DeploymentWatcher:
        self.refresh()
        self._thread = threading.Thread(
            target=self._run, name=f"watch-{self.endpoint_id}", daemon=True
        )
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.refresh()
            except Exception as exc:  # the watcher must outlive a bad file
                log.error("watch_failed", endpoint_id=self.endpoint_id, error=str(exc))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


class StaticDeployment:
    """One model loaded from an artifact folder: the Vertex custom-container mode.

    Vertex sets ``AIP_STORAGE_URI`` to the Cloud Storage copy of the model's artifact folder; the
    container must fetch it itself (:func:`fetch_storage_uri`). Locally it is simply a path.
    """

    def __init__(
        self,
        directory: Path | str,
        *,
        endpoint_id: str = "local",
        deployed_model_id: str | None = None,
    ) -> None:
        model = load_model(directory)
        warm_up(model)
        version = model.metadata.version or Path(directory).name
        dm_id = deployed_model_id or os.environ.get("AIP_DEPLOYED_MODEL_ID") or "1"
        self._deployment = Deployment(endpoint_id, (LoadedModel(dm_id, version, 100, model),))

    def current(self) -> Deployment | None:
        return self._deployment

    def start(self) -> StaticDeployment:
        return self

    def stop(self) -> None:
        return None


def fetch_storage_uri(uri: str) -> Path:
    """A local folder holding the artifact named by ``AIP_STORAGE_URI`` (downloaded if gs://)."""
    if not uri.startswith("gs://"):
        return Path(uri.removeprefix("file://"))
    from google.cloud import storage  # type: ignore[attr-defined]  # only in the cloud container

    bucket_name, _, prefix = uri[len("gs://") :].partition("/")
    target = Path(tempfile.mkdtemp(prefix="model-"))
    client = storage.Client()
    for blob in client.list_blobs(bucket_name, prefix=prefix.rstrip("/") + "/"):
        rel = blob.name[len(prefix.rstrip("/")) + 1 :]
        if not rel or rel.endswith("/"):
            continue
        dest = target / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        blob.download_to_filename(str(dest))
    return target
