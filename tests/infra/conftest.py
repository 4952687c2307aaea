"""Synthesize both stacks once per test session (cdktn start-up costs seconds, synthesis less).

Two renderings of the same app: ``synth_configs`` is what ``python -m stacks`` writes (the files
terraform, checkov and the infra diff read, including the ``//`` comment blocks), and
``testing_configs`` is ``Testing.synth`` of stacks built in ``Testing.app()`` (cdktn's testing
entry point; ``Testing.synth_scope`` is broken from Python).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]

# Values planted in the environment before synthesis: none may reach the synthesized JSON.
SECRET_CANARIES = {
    "SALESLOOP_SECRET_SMTP_PASSWORD": "canary-smtp-pw-8d1f0c2e",
    "SMTP_PASSWORD": "canary-smtp-pw-5b7a91d4",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.infra)
            # Under pytest-xdist (--dist loadgroup) all infra tests share one worker, so the
            # session fixtures synthesize once, not once per worker.
            item.add_marker(pytest.mark.xdist_group("infra"))


@contextmanager
def _secret_canaries() -> Iterator[None]:
    """Plant the canaries for the synthesis only: other tests in this process (pytest-xdist
    workers run several areas) must see the environment they expect."""
    saved = {k: os.environ.get(k) for k in SECRET_CANARIES}
    os.environ.update(SECRET_CANARIES)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from stacks.app import synth

    out = tmp_path_factory.mktemp("cdktf") / "cdktf.out"
    with _secret_canaries():
        synth(out)
    return out


@pytest.fixture(scope="session")
def synth_configs(synth_dir: Path) -> dict[str, dict[str, Any]]:
    return {
        env: json.loads((synth_dir / "stacks" / env / "cdk.tf.json").read_text())
        for env in ("dev", "prod")
    }


@pytest.fixture(scope="session")
def testing_configs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    from cdktn import Testing

    from stacks.app import build_app

    with _secret_canaries():
        app = Testing.app()
        stacks = build_app(app, archive_dir=tmp_path_factory.mktemp("archives"))
        return {env: json.loads(Testing.synth(stack)) for env, stack in stacks.items()}
