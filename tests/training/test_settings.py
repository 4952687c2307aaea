from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from salesloop.config import SettingsError, load_settings
from salesloop.training_settings import TrainingSettings, training_settings


@pytest.mark.parametrize("env", ["local", "dev", "prod"])
def test_every_environment_has_valid_training_settings(env: str) -> None:
    train = training_settings(load_settings(env))
    assert train.backtest.windows == 4
    assert train.backtest.horizon == 7 and train.backtest.step == 7
    assert train.canary.steps[-1] == 100
    assert train.vertex.pipeline_root == f"gs://salesloop-{env}-pipelines/root"
    assert train.vertex.service_account == f"pipelines@salesloop-{env}.iam.gserviceaccount.com"


def test_prod_gate_is_stricter_than_base() -> None:
    base = training_settings(load_settings("dev")).gate
    prod = training_settings(load_settings("prod")).gate
    assert prod.min_improvement_vs_seasonal_naive > base.min_improvement_vs_seasonal_naive
    assert prod.max_degradation_vs_champion < base.max_degradation_vs_champion
    assert prod.max_coverage_gap is not None and base.max_coverage_gap is not None
    assert prod.max_coverage_gap < base.max_coverage_gap
    assert len(training_settings(load_settings("prod")).canary.steps) > 2


def test_horizon_and_history_follow_the_other_sections(tmp_path: Path) -> None:
    overlay = tmp_path / "weekly.yaml"
    overlay.write_text(
        yaml.safe_dump(
            {
                "forecast": {"freq": "W", "horizon": 4, "season_length": 52},
                "warehouse": {"history_days": 1500},
            }
        )
    )
    train = training_settings(load_settings("local", extra_overlay=overlay))
    assert train.backtest.horizon == 4 and train.backtest.step == 4
    assert train.backtest.min_train_periods == 4 * 52
    assert train.history_days == 1500


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ({"gate": {"min_improvment": 0.1}}, "training.gate.min_improvment"),
        ({"canary": {"steps": [10, 50]}}, "training.canary.steps"),
        ({"canary": {"steps": [50, 10, 100]}}, "training.canary.steps"),
        ({"candidates": ["lightgbm", "lightgbm"]}, "training.candidates"),
        ({"candidates": [{"name": "x", "kind": "prophet"}]}, "training.candidates.0.kind"),
        ({"backtest": {"windows": 0}}, "training.backtest.windows"),
    ],
)
def test_bad_training_settings_name_the_dotted_key(
    tmp_path: Path, section: dict[str, object], key: str
) -> None:
    overlay = tmp_path / "bad.yaml"
    overlay.write_text(yaml.safe_dump({"training": section}))
    settings = load_settings("local", extra_overlay=overlay)
    with pytest.raises(SettingsError, match=key.replace(".", r"\.")):
        training_settings(settings)


def test_candidate_shorthand() -> None:
    train = TrainingSettings.model_validate(
        {"candidates": ["lightgbm", {"name": "ets", "kind": "auto_ets"}], "select_best": True}
    )
    assert [(c.name, c.kind) for c in train.candidates] == [
        ("lightgbm", "lightgbm"),
        ("ets", "auto_ets"),
    ]
    assert train.candidate("ets").kind == "auto_ets"
