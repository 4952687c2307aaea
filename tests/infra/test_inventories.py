"""Each environment's synthesized stack against its reviewed inventory (tests/infra/inventories)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.infra.inventory import counts, inventory_mismatches, subset_mismatches

INVENTORIES = Path(__file__).parent / "inventories"


def _inventory(env: str) -> dict[str, Any]:
    data = yaml.safe_load((INVENTORIES / f"{env}.yaml").read_text())
    assert isinstance(data, dict)
    return data


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_stack_matches_its_inventory(env: str, testing_configs: dict[str, dict[str, Any]]) -> None:
    problems = inventory_mismatches(_inventory(env), testing_configs[env])
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_full_synthesis_has_the_same_resources_as_testing_synth(
    env: str,
    testing_configs: dict[str, dict[str, Any]],
    synth_configs: dict[str, dict[str, Any]],
) -> None:
    assert counts(synth_configs[env]) == counts(testing_configs[env])


def test_a_changed_value_or_count_is_reported(testing_configs: dict[str, dict[str, Any]]) -> None:
    config = copy.deepcopy(testing_configs["prod"])
    fn = config["resource"]["google_cloudfunctions2_function"]["function_on_sale"]
    fn["service_config"]["ingress_settings"] = "ALLOW_ALL"
    del config["resource"]["google_pubsub_subscription"]
    problems = inventory_mismatches(_inventory("prod"), config)
    assert any("ingress_settings: expected 'ALLOW_INTERNAL_ONLY'" in p for p in problems)
    assert any("dead_letter_hold: not in the stack" in p for p in problems)
    assert any(p.startswith("count of google_pubsub_subscription") for p in problems)
    assert any(p.startswith("count of resources") for p in problems)


def test_subset_match_semantics() -> None:
    actual = {"a": 1, "b": {"c": [1, {"d": 2, "e": 3}]}, "extra": True}
    assert subset_mismatches({"b": {"c": [1, {"d": 2}]}}, actual) == []
    assert subset_mismatches({"b": {"c": [1]}}, actual) != []  # list lengths must agree
    assert subset_mismatches({"a": 2}, actual) == [".a: expected 2, got 1"]
    assert subset_mismatches({"z": 1}, actual) == [".z: missing"]
