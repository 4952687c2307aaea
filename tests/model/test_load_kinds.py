"""Every registered model kind loads back through the generic loader (what the server uses)."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pandas as pd

from salesloop.evaluation.baselines import SeasonalNaiveForecaster
from salesloop.model import to_frame
from tests.model.synthetic import synth_sales


def test_seasonal_naive_artifact_loads_in_a_fresh_process(tmp_path: Path) -> None:
    frame = to_frame(synth_sales(n_series=4, n_days=60))
    model = SeasonalNaiveForecaster().fit(frame)
    model.save(tmp_path / "m")
    expected = model.predict(frame, 7)
    # a fresh interpreter: the kind must register itself on load, not because a test imported it
    code = (
        "import sys, pandas as pd; from salesloop.model import load_model, to_frame;"
        "from tests.model.synthetic import synth_sales;"
        f"m = load_model({str(tmp_path / 'm')!r});"
        "p = m.predict(to_frame(synth_sales(n_series=4, n_days=60)), 7);"
        "print(m.kind); p.to_json(sys.stdout, orient='records', date_format='iso')"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    ).stdout
    kind, _, payload = out.partition("\n")
    assert kind == "seasonal_naive"
    got = pd.read_json(io.StringIO(payload), orient="records")
    assert (
        len(got) == len(expected)
        and got["yhat"].round(6).tolist() == expected["yhat"].round(6).tolist()
    )
