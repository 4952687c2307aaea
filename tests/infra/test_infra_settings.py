"""The infra section of the settings: strict, and checked against the rest of the settings."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from salesloop.config import SettingsError, load_settings
from salesloop.infra_settings import infra_settings

REPO = Path(__file__).resolve().parents[2]


def _envs_with(tmp_path: Path, env: str, patch: dict[str, object]) -> Path:
    d = tmp_path / "environments"
    d.mkdir()
    for f in (REPO / "environments").glob("*.yaml"):
        (d / f.name).write_text(f.read_text())
    data = yaml.safe_load((d / f"{env}.yaml").read_text())
    for dotted, value in patch.items():
        node = data
        *parents, last = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    (d / f"{env}.yaml").write_text(yaml.safe_dump(data))
    return d


def test_dev_and_prod_settings_are_valid() -> None:
    dev = infra_settings(load_settings("dev"))
    prod = infra_settings(load_settings("prod"))
    assert dev.cmek is None and prod.cmek is not None
    assert not dev.deletion_protection and prod.deletion_protection
    assert prod.function.min_instances >= 1


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"infra.alerting.thresold": 3}, "infra.alerting.thresold"),
        ({"infra.function.min_instances": 30}, "min_instances is larger"),
        ({"infra.scheduler.monitoring_cron": "daily"}, "cron"),
        ({"infra.labels": {"env": "x"}}, "set from the settings"),
        (
            {
                "infra.cmek.regional_key": "projects/salesloop-prod/locations/us-east1/keyRings/r/cryptoKeys/k"
            },
            "region is 'europe-west1'",
        ),
        ({"predictor.endpoint_id": "sales-forecast"}, "must be numeric"),
    ],
)
def test_bad_infra_settings_fail_with_the_key(
    tmp_path: Path, patch: dict[str, object], message: str
) -> None:
    settings = load_settings("prod", directory=_envs_with(tmp_path, "prod", patch))
    with pytest.raises(SettingsError, match=message):
        infra_settings(settings)


def test_local_has_no_infrastructure() -> None:
    with pytest.raises(SettingsError, match="no cloud infrastructure"):
        infra_settings(load_settings("local"))
