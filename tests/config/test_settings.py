from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from salesloop.config import ENV_NAMES, SettingsError, load_settings


@pytest.mark.parametrize("env", ENV_NAMES)
def test_every_environment_loads(env: str) -> None:
    s = load_settings(env)
    assert s.env == env
    assert s.forecast.horizon == 7
    assert s.alerts.interval_level in s.forecast.interval_levels


def test_overlays_change_only_what_they_say() -> None:
    local, prod = load_settings("local"), load_settings("prod")
    assert prod.warehouse.backend == "bigquery" and local.warehouse.backend == "duckdb"
    assert prod.alerts.drop_threshold == 0.25 and local.alerts.drop_threshold == 0.30
    assert prod.forecast == local.forecast


def test_env_variable_selects(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SALESLOOP_ENV", "dev")
    assert load_settings().project == "salesloop-dev"


def _copy_envs(tmp_path: Path, repo: Path) -> Path:
    d = tmp_path / "environments"
    shutil.copytree(repo / "environments", d)
    return d


def test_unknown_key_names_file_and_key(tmp_path: Path, repo: Path) -> None:
    d = _copy_envs(tmp_path, repo)
    data = yaml.safe_load((d / "prod.yaml").read_text())
    data["alerts"]["drop_treshold"] = 0.2  # the typo a human makes
    (d / "prod.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(SettingsError) as err:
        load_settings("prod", directory=d)
    assert "prod.yaml" in str(err.value) and "alerts.drop_treshold" in str(err.value)


def test_bad_value_names_file_and_key(tmp_path: Path, repo: Path) -> None:
    d = _copy_envs(tmp_path, repo)
    (d / "local.yaml").write_text("project: salesloop-local\nforecast:\n  horizon: 0\n")
    with pytest.raises(SettingsError) as err:
        load_settings("local", directory=d)
    assert "local.yaml" in str(err.value) and "forecast.horizon" in str(err.value)


def test_base_value_error_blames_base(tmp_path: Path, repo: Path) -> None:
    d = _copy_envs(tmp_path, repo)
    text = (d / "base.yaml").read_text().replace("cooldown_days: 7", "cooldown_days: -1")
    (d / "base.yaml").write_text(text)
    with pytest.raises(SettingsError) as err:
        load_settings("dev", directory=d)
    assert "base.yaml" in str(err.value) and "alerts.cooldown_days" in str(err.value)


def test_unknown_environment_and_bad_yaml(tmp_path: Path, repo: Path) -> None:
    with pytest.raises(SettingsError, match="unknown environment"):
        load_settings("staging")
    d = _copy_envs(tmp_path, repo)
    (d / "dev.yaml").write_text("project: [unclosed\n")
    with pytest.raises(SettingsError, match="not valid YAML"):
        load_settings("dev", directory=d)


def test_extra_overlay_applies_last(tmp_path: Path) -> None:
    over = tmp_path / "overlay.yaml"
    over.write_text("smtp:\n  port: 2525\n")
    assert load_settings("local", extra_overlay=over).smtp.port == 2525


def test_alert_level_must_be_a_forecast_level(tmp_path: Path) -> None:
    over = tmp_path / "overlay.yaml"
    over.write_text("alerts:\n  interval_level: 90\n")
    with pytest.raises(SettingsError, match="interval_level"):
        load_settings("local", extra_overlay=over)


def test_recipients_route_by_store_and_category() -> None:
    from salesloop.config import Recipients

    r = Recipients(
        default=["d@x.io"], by_category={"FOODS": ["f@x.io"]}, by_store={"CA_1": ["s@x.io"]}
    )
    assert r.for_subject("CA_1", "FOODS") == ["f@x.io", "s@x.io"]
    assert r.for_subject("TX_1", "HOBBIES") == ["d@x.io"]
    with pytest.raises(ValueError, match="not an email"):
        Recipients(default=["nobody"])
