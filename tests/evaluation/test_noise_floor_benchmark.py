"""benchmarks/noise_floor.py on a tiny run: the JSON the accuracy target is judged by."""

from __future__ import annotations

import json

import pytest

from tests.reliability.bench import load_benchmark


def test_noise_floor_reports_both_oracles_per_seed(capsys: pytest.CaptureFixture[str]) -> None:
    noise_floor = load_benchmark("noise_floor.py")
    argv = ["--seeds", "0,1", "--series", "250", "--days", "200", "--scales", "0.9,1"]
    assert noise_floor.main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["seeds"]) == {"0", "1"}
    for floor in out["seeds"].values():
        assert len(floor["cutoffs"]) == 4
        assert set(floor["causal_oracle_by_scale"]) == {"0.9", "1"}
        best = floor["causal_oracle_best"]
        assert best["ratio"] == min(floor["causal_oracle_by_scale"].values())
        assert floor["causal_oracle"] == floor["causal_oracle_by_scale"]["1"]
        # Knowing the horizon's stock-outs can only help, and both beat SeasonalNaive by far.
        assert 0.5 < floor["oracle"] < floor["causal_oracle"] < 0.9
    worst = max(f["causal_oracle_best"]["ratio"] for f in out["seeds"].values())
    assert out["target_reachable"] is (worst <= out["target_ratio"])


def test_noise_floor_rejects_bad_lists(capsys: pytest.CaptureFixture[str]) -> None:
    noise_floor = load_benchmark("noise_floor.py")
    for argv in (["--seeds", "a"], ["--scales", "0,1"], ["--seeds", ""]):
        with pytest.raises(SystemExit) as exc:
            noise_floor.main(argv)
        assert exc.value.code == 2
    assert "comma-separated numbers" in capsys.readouterr().err


def test_without_stockouts_both_oracles_agree_and_the_generator_is_restored(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from salesloop.data import generate

    before = generate.demand_truth(250, 200, seed=0).oos_rate.copy()
    noise_floor = load_benchmark("noise_floor.py")
    argv = ["--seeds", "0", "--series", "250", "--days", "200", "--scales", "1"]
    assert noise_floor.main([*argv, "--stockout-scale", "0"]) == 0
    out = json.loads(capsys.readouterr().out)
    floor = out["seeds"]["0"]
    assert out["data"]["stockout_scale"] == 0
    # No spell can start in the horizon, so knowing the future adds nothing.
    assert floor["oracle"] == floor["causal_oracle"]
    assert 0.3 < floor["zero_share"] < 0.7
    assert (generate.demand_truth(250, 200, seed=0).oos_rate == before).all()
    with pytest.raises(SystemExit):
        noise_floor.main([*argv, "--stockout-scale", "-1"])
