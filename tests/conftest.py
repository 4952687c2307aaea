"""Shared fixtures: every test gets its own run folder and settings; nothing touches runs/ of the repo."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("SALESLOOP_ENVIRONMENTS", str(REPO / "environments"))
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SALESLOOP_OVERLAY", raising=False)
    monkeypatch.delenv("SALESLOOP_ENV", raising=False)
