from __future__ import annotations

import json
import threading
from pathlib import Path

import pandas as pd
import pytest

from salesloop.model import LightGBMForecaster, to_frame
from salesloop.registry import LocalRegistry, RegistryError, split_traffic
from tests.model.synthetic import fitted_model, sales_frame


@pytest.fixture(scope="module")
def model() -> LightGBMForecaster:
    return fitted_model()


def test_register_assigns_sequential_immutable_versions(
    model: LightGBMForecaster, tmp_path: Path
) -> None:
    reg = LocalRegistry(tmp_path / "reg")
    v1 = reg.register(model, {"note": "first", "metrics": {"mase": 0.9}}, reason="test")
    v2 = reg.register(model)
    assert (v1, v2) == ("v0001", "v0002")
    assert reg.list_versions() == ["v0001", "v0002"]
    mv = reg.get(v1)
    assert mv.metadata["version"] == "v0001" and mv.metadata["note"] == "first"
    assert mv.metadata["model_kind"] == "lightgbm" and mv.metadata["registered_by"]
    with pytest.raises(RegistryError, match="immutable"):
        reg.register(model, version="v0001")
    with pytest.raises(RegistryError, match="owned by the registry"):
        reg.register(model, {"version": "v0009"})
    # an artifact folder registers too (and a copy of a read-only registered version works)
    v3 = reg.register(mv.path, {"note": "copied"})
    assert reg.get(v3).metadata["note"] == "copied"
    frame = to_frame(sales_frame())
    pd.testing.assert_frame_equal(reg.load_model(v3).predict(frame, 7), model.predict(frame, 7))
    with pytest.raises(RegistryError, match="unknown version"):
        reg.get("v0042")
    assert not [p for p in (tmp_path / "reg" / "versions").iterdir() if p.name.startswith(".")]


def test_concurrent_registrations_get_distinct_versions(
    model: LightGBMForecaster, tmp_path: Path
) -> None:
    src = tmp_path / "art"
    model.save(src)
    reg = LocalRegistry(tmp_path / "reg")
    out: list[str] = []
    threads = [
        threading.Thread(target=lambda: out.append(LocalRegistry(reg.root).register(src)))
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(out) == ["v0001", "v0002", "v0003", "v0004"]


def test_aliases_and_audit(model: LightGBMForecaster, tmp_path: Path) -> None:
    reg = LocalRegistry(tmp_path / "reg")
    v1, v2 = reg.register(model), reg.register(model)
    assert reg.alias("champion") is None
    reg.set_alias("champion", v1, "first model", actor="alice")
    reg.set_alias("challenger", v2, "retrained", actor="bob")
    reg.set_alias("champion", v2, "promoted after backtest", actor="carol")
    assert reg.aliases() == {"champion": v2, "challenger": v2}
    assert json.loads((tmp_path / "reg" / "aliases.json").read_text())["champion"] == v2
    with pytest.raises(RegistryError):
        reg.set_alias("champion", "v0099", "nope")
    entries = reg.audit()
    assert [e["action"] for e in entries] == [
        "register",
        "register",
        "set_alias",
        "set_alias",
        "set_alias",
    ]
    last = entries[-1]
    assert last["alias"] == "champion" and last["version"] == v2 and last["previous"] == v1
    assert last["actor"] == "carol" and last["reason"] == "promoted after backtest"
    assert all(
        {"timestamp", "action", "version", "alias", "reason", "actor"} <= set(e) for e in entries
    )


def test_deploy_canary_and_undeploy(model: LightGBMForecaster, tmp_path: Path) -> None:
    reg = LocalRegistry(tmp_path / "reg")
    v1, v2, v3 = (reg.register(model) for _ in range(3))
    with pytest.raises(RegistryError, match="traffic=100 first"):
        reg.deploy("ep", v1, traffic=10)
    reg.deploy("ep", v1)
    assert [(m.version, m.traffic) for m in reg.deployed("ep")] == [(v1, 100)]
    reg.deploy("ep", v2, traffic=10, reason="canary")
    assert [(m.version, m.traffic) for m in reg.deployed("ep")] == [(v1, 90), (v2, 10)]
    reg.deploy("ep", v3, traffic=20)
    assert {m.version: m.traffic for m in reg.deployed("ep")} == {v1: 72, v2: 8, v3: 20}
    reg.undeploy("ep", v1, reason="rollback")
    assert {m.version: m.traffic for m in reg.deployed("ep")} == {v2: 29, v3: 71}
    reg.set_traffic("ep", {v2: 0, v3: 100})
    assert [(m.version, m.traffic) for m in reg.deployed("ep")] == [(v3, 100)]
    raw = json.loads((tmp_path / "reg" / "endpoints" / "ep.json").read_text())
    assert raw["deployed_models"] == [{"id": "3", "version": v3, "traffic": 100}]
    assert [e["action"] for e in reg.audit()][-5:] == [
        "deploy",
        "deploy",
        "deploy",
        "undeploy",
        "set_traffic",
    ]


def test_split_traffic_sums_exactly() -> None:
    assert split_traffic({"a": 1, "b": 1, "c": 1}) == {"a": 34, "b": 33, "c": 33}
    assert sum(split_traffic({"a": 7, "b": 3}, 90).values()) == 90
