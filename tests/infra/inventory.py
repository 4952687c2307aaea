"""Plan-inventory matching in the style of cloud-foundation-fabric's tests: the expected values are
a subset of the synthesized resource (only listed keys are compared), counts are exact."""

from __future__ import annotations

from collections import Counter
from typing import Any


def resources(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """address (``type.name``) → body, for every resource of a synthesized stack."""
    return {
        f"{rtype}.{name}": body
        for rtype, by_name in config.get("resource", {}).items()
        for name, body in by_name.items()
    }


def counts(config: dict[str, Any]) -> dict[str, int]:
    out = Counter({rtype: len(by_name) for rtype, by_name in config.get("resource", {}).items()})
    out["resources"] = sum(out.values())
    return dict(out)


def subset_mismatches(expected: Any, actual: Any, path: str = "") -> list[str]:
    """Where ``actual`` does not contain ``expected``; empty when it does."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{path}: expected a mapping, got {actual!r}"]
        problems: list[str] = []
        for key, value in expected.items():
            if key not in actual:
                problems.append(f"{path}.{key}: missing")
            else:
                problems += subset_mismatches(value, actual[key], f"{path}.{key}")
        return problems
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return [f"{path}: expected {len(expected)} items, got {actual!r}"]
        problems = []
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            problems += subset_mismatches(e, a, f"{path}[{i}]")
        return problems
    if expected != actual:
        return [f"{path}: expected {expected!r}, got {actual!r}"]
    return []


def inventory_mismatches(inventory: dict[str, Any], config: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    by_address = resources(config)
    for address, expected in (inventory.get("values") or {}).items():
        if address not in by_address:
            problems.append(f"{address}: not in the stack")
            continue
        problems += [f"{address}{p}" for p in subset_mismatches(expected, by_address[address])]
    expected_counts = inventory.get("counts") or {}
    actual_counts = counts(config)
    for key in sorted(set(expected_counts) | set(actual_counts)):
        if expected_counts.get(key, 0) != actual_counts.get(key, 0):
            problems.append(
                f"count of {key}: expected {expected_counts.get(key, 0)}, got {actual_counts.get(key, 0)}"
            )
    return problems
