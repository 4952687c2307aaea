"""The system report: content from the warehouse, self-contained, and rendered by headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from salesloop.config import Settings, load_settings
from salesloop.monitoring.monitor import RetrainOutcome, run_monitor
from salesloop.report import build_report, write_report
from salesloop.warehouse import Merge
from salesloop.warehouse.duckdb import DuckDBWarehouse
from tests.monitoring import scenario

CHROMIUM = shutil.which("chromium") or (
    "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
)


@pytest.fixture
def settings() -> Settings:
    return load_settings("local")


@pytest.fixture
def wh() -> Iterator[DuckDBWarehouse]:
    w = DuckDBWarehouse(":memory:")
    yield w
    w.close()


def _alerts(n: int, start: datetime) -> pd.DataFrame:
    rows = []
    for i in range(n):
        week = (start + timedelta(days=7 * (i % 3))).date()
        rows.append(
            {
                "alert_key": f"TX_1/FOODS_1_00{i}|{week}|drop",
                "scope": "series",
                "subject_id": f"TX_1/FOODS_1_00{i}",
                "store_id": "TX_1",
                "cat_id": "FOODS",
                "rule": "drop_vs_trailing_7d",
                "week_start": week,
                "forecast_origin": week - timedelta(days=1),
                "baseline": 40.0,
                "baseline_kind": "trailing_7d",
                "forecast": 12.0,
                "lo": 8.0,
                "hi": 16.0,
                "drop_pct": 0.7,
                "model_version": "v1",
                "recipients": "tx-owner@example.com",
                "event_id": f"e{i}",
                "status": "sent" if i % 2 == 0 else "pending",
                "message_id": None,
                "created_at": start + timedelta(days=i),
                "sent_at": None,
            }
        )
    return pd.DataFrame(rows)


@pytest.fixture
def populated(
    wh: DuckDBWarehouse, settings: Settings, tmp_path: Path
) -> tuple[DuckDBWarehouse, Path]:
    sc = scenario.build(wh, daily_jobs=7, closed_store="TX_1")
    for k in (12, 8, 4):
        run_monitor(wh, settings, now=sc.now - timedelta(days=k))
    # The last run retrains whatever the cooldown says.
    eager = settings.model_copy(
        update={"monitoring": {**settings.monitoring, "retrain_cooldown_days": 0}}
    )
    run_monitor(
        wh,
        eager,
        now=sc.now,
        on_retrain=lambda r: RetrainOutcome("promoted", "v2", "beat v1", "lgbm"),
    )
    wh.apply([Merge("alerts", _alerts(5, sc.now - timedelta(days=20)))])
    registry = tmp_path / "registry"
    (registry / "versions" / "v0").mkdir(parents=True)
    (registry / "versions" / "v0" / "metadata.json").write_text(
        json.dumps(
            {
                "version": "v0",
                "model_kind": "seasonal_naive",
                "metrics": {"backtest": {"mase": 1.0}},
            }
        )
    )
    return wh, registry


def test_report_content_and_self_containment(
    populated: tuple[DuckDBWarehouse, Path], settings: Settings
) -> None:
    wh, registry = populated
    html = build_report(wh, settings, registry=registry, now=datetime(2016, 6, 1, tzinfo=UTC))
    for needle in (
        "salesloop system report",
        ">v1<",
        ">v2<",
        ">v0<",  # from the registry folder only
        "seasonal_naive",
        "retrained by monitoring run",
        "promoted:v2",
        "5 alerts, 3 sent",
        "TX_1/FOODS_1_000",
        "2016-06-01 00:00 UTC",
    ):
        assert needle in html, needle
    ids = re.findall(r'<div class="chart" id="(chart-[a-z]+)">\s*<svg', html)
    assert ids == [
        "chart-backtests",
        "chart-accuracy",
        "chart-coverage",
        "chart-scopes",
        "chart-drift",
        "chart-alerts",
    ]
    # Self-contained: no external resource is loaded.
    assert not re.search(r'(src|href)\s*=\s*"(https?:)?//', html)
    assert "<link" not in html and "@import" not in html


def test_empty_warehouse_renders(wh: DuckDBWarehouse, settings: Settings, tmp_path: Path) -> None:
    out = write_report(wh, settings, tmp_path / "r" / "report.html")
    html = out.read_text()
    assert "No model version registered yet." in html
    assert "No monitoring run recorded yet." in html and "No drop alert raised." in html
    assert html.count("<svg") == 4  # placeholders say "nothing yet" instead of breaking the page


# -- headless Chromium -----------------------------------------------------------------------------
def _chromium(page: Path, tmp: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    profile = tmp / "chromium-profile"
    profile.mkdir(exist_ok=True)
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=5000",
            "--window-size=1200,2400",
            *extra,
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _body_attrs(dom: str) -> dict[str, str]:
    m = re.search(r"<body\b([^>]*)>", dom[dom.index("</head>") :])
    assert m, dom[:500]
    return dict(re.findall(r'([a-z-]+)="([^"]*)"', m.group(1)))


def _console_errors(stderr: str) -> list[str]:
    return [
        line
        for line in stderr.splitlines()
        if "CONSOLE" in line and ("Uncaught" in line or "rror" in line)
    ]


@pytest.mark.slow
@pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium binary not found (/usr/bin/chromium); run scripts/install-chromium.sh",
)
def test_report_renders_in_headless_chromium(
    populated: tuple[DuckDBWarehouse, Path], settings: Settings, tmp_path: Path
) -> None:
    wh, registry = populated
    page = write_report(wh, settings, tmp_path / "report.html", registry=registry)
    proc = _chromium(page, tmp_path, "--dump-dom")
    assert proc.returncode == 0, proc.stderr[-2000:]
    attrs = _body_attrs(proc.stdout)
    assert attrs.get("data-errors") == "0", attrs
    assert attrs.get("data-charts") == "6" and attrs.get("data-charts-ready") == "6", attrs
    sizes = re.findall(r'<svg[^>]*data-rendered="(\d+)x(\d+)"', proc.stdout)
    assert len(sizes) == 6 and all(int(w) > 200 and int(h) > 100 for w, h in sizes), sizes
    assert _console_errors(proc.stderr) == []
    # The screenshot is not blank: charts and tables put ink on a good share of it.
    shot = tmp_path / "report.png"
    proc = _chromium(page, tmp_path, f"--screenshot={shot}")
    assert proc.returncode == 0 and shot.exists(), proc.stderr[-2000:]
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.shape[0] >= 2000
    assert (pixels < 200).mean() > 0.02  # not a white page
    assert len(np.unique(pixels)) > 50  # anti-aliased charts, not a flat error screen


@pytest.mark.slow
@pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium binary not found (/usr/bin/chromium); run scripts/install-chromium.sh",
)
def test_the_page_check_catches_a_broken_page(
    wh: DuckDBWarehouse, settings: Settings, tmp_path: Path
) -> None:
    html = build_report(wh, settings)
    broken = html.replace(
        '<div class="chart" id="chart-drift">',
        '<div class="chart"><img src="missing.png" alt="gone"></div>'
        '<script>notAFunction();</script><div class="chart" id="chart-drift">',
    )
    page = tmp_path / "broken.html"
    page.write_text(broken)
    proc = _chromium(page, tmp_path, "--dump-dom")
    attrs = _body_attrs(proc.stdout)
    assert attrs["data-errors"] != "0"
    assert int(attrs["data-charts-ready"]) == int(attrs["data-charts"]) - 1
    assert _console_errors(proc.stderr), proc.stderr[-2000:]
