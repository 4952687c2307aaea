"""The policy gate: checkov on the synthesized stacks, skips recorded on the resources."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from stacks.policy import Verdict, check, declared_skips, evaluate, render, resolve_address


@pytest.fixture(scope="module")
def verdict(synth_dir: Path) -> Verdict:
    started = time.perf_counter()
    v = check(synth_dir, ("dev", "prod"))
    assert time.perf_counter() - started < 90
    return v


def test_prod_and_dev_have_no_unskipped_failure(verdict: Verdict) -> None:
    assert verdict.ok, render(verdict)
    assert verdict.passed > 100
    prod_skips = {(f.check_id, f.address) for f in verdict.skipped if f.env == "prod"}
    # Prod accepts only the findings it argues for; CMEK and deletion protection it must meet.
    assert {c for c, _ in prod_skips} <= {"CKV_GCP_62", "CKV2_GCP_33"}
    assert all(f.reason for f in verdict.skipped)


def test_every_skip_is_a_checkov_skip_comment_with_a_reason(synth_configs: dict[str, Any]) -> None:
    for config in synth_configs.values():
        skips, malformed = declared_skips(config)
        assert not malformed
        assert skips
        for checks in skips.values():
            assert all(len(reason) > 20 for reason in checks.values())


def _report(env: str, check_id: str, resource: str) -> dict[str, Any]:
    record = {
        "check_id": check_id,
        "check_name": "a check",
        "resource": resource,
        "file_path": "/cdk.tf.json",
        "file_abs_path": f"/x/stacks/{env}/cdk.tf.json",
    }
    return {"results": {"failed_checks": [record], "passed_checks": []}}


def _bucket(skips: list[str]) -> dict[str, Any]:
    return {"resource": {"google_storage_bucket": {"b": {"//": {"checkov": skips}}}}}


def test_a_finding_with_a_recorded_skip_is_skipped_with_its_reason() -> None:
    config = _bucket(["checkov:skip=CKV_GCP_62:logs elsewhere, on purpose"])
    verdict = evaluate([_report("prod", "CKV_GCP_62", "resource.b")], {"prod": config})
    assert verdict.ok
    assert [(f.address, f.reason) for f in verdict.skipped] == [
        ("google_storage_bucket.b", "logs elsewhere, on purpose")
    ]


def test_unskipped_stale_and_malformed_skips_fail() -> None:
    config = _bucket(["checkov:skip=CKV_GCP_62:logs elsewhere, on purpose"])
    failed = evaluate([_report("prod", "CKV_GCP_78", "google_storage_bucket.b")], {"prod": config})
    assert not failed.ok
    assert [f.check_id for f in failed.failed] == ["CKV_GCP_78"]
    assert [f.check_id for f in failed.stale] == ["CKV_GCP_62"]  # the skip matched nothing
    no_reason = evaluate(
        [_report("prod", "CKV_GCP_62", "resource.b")],
        {"prod": _bucket(["checkov:skip=CKV_GCP_62:"])},
    )
    assert not no_reason.ok and no_reason.malformed and no_reason.failed


def test_attribute_findings_are_mapped_back_by_unique_name() -> None:
    assert (
        resolve_address("resource.b", {"b": ["google_storage_bucket.b"]})
        == "google_storage_bucket.b"
    )
    assert resolve_address("google_x.y", {}) == "google_x.y"
