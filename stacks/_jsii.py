"""jsii settings that must be in the environment before cdktn is first imported."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def jsii_environment() -> None:
    """Keep jsii's unpacked provider bindings (~460 MB, unpacked once) in the repo's ignored
    ``.jsii-cache/`` instead of a temp dir per process, and mute the node-version banner (cdktn's
    bundled runtime works on the machine's node 20; only the cdktn CLI needs node >= 22)."""
    os.environ.setdefault("JSII_RUNTIME_PACKAGE_CACHE_ROOT", str(REPO_ROOT / ".jsii-cache"))
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    os.environ.setdefault("JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION", "1")
    os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
