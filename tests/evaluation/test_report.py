from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

from salesloop.evaluation.backtest import Contender, plan_backtest, run_backtest
from salesloop.evaluation.report import render_report, write_report
from salesloop.model import to_frame
from tests.evaluation.fakes import MeanModel
from tests.training.helpers import daily_sales


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.images: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "img":
            self.images.append(dict(attrs).get("src") or "")


def test_report_has_tables_plots_and_the_decision(tmp_path: Path) -> None:
    frame = to_frame(daily_sales(12, 100))
    plan = plan_backtest(
        frame, windows=2, horizon=7, step=7, season_length=7, levels=(80, 95), min_train_periods=28
    )
    result = run_backtest(
        frame,
        plan,
        [
            Contender("good", "candidate", factory=MeanModel),
            Contender("bad", "baseline", factory=lambda: MeanModel(factor=3.0)),
        ],
    )
    decision = {"accepted": False, "reasons": ["rmsse 1.2 vs SeasonalNaive 1.0 <worse>"]}
    html = render_report(frame, result, highlight="good", decision=decision, n_series=3)
    parsed = _Collect()
    parsed.feed(html)
    assert parsed.tags.count("table") >= 3  # overall, per category, per window
    assert len(parsed.images) == 1 + 3  # RMSSE bars + three series
    assert all(src.startswith("data:image/png;base64,") for src in parsed.images)
    assert "rejected" in html and "&lt;worse&gt;" in html  # reasons are escaped
    for cut in plan.cutoffs:
        assert str(cut.date()) in html
    # the best RMSSE is highlighted, and it is the good model's
    row = re.search(r"<tr><td>good</td>(.*?)</tr>", html)
    assert row is not None and 'class="best"' in row.group(1)
    path = write_report(tmp_path / "r" / "report.html", frame, result, n_series=0)
    assert path.read_text().count("<img") == 1
