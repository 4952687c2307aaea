"""Import a benchmark script (benchmarks/ is not a package) to test its helpers."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType


def load_benchmark(script: str) -> ModuleType:
    path = Path(__file__).parents[2] / "benchmarks" / script
    spec = importlib.util.spec_from_file_location(f"benchmark_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
