"""Alert and ML-owner emails: numbers in both parts, inline charts by cid, stable Message-ID."""

from __future__ import annotations

import re
from datetime import timedelta
from email.message import EmailMessage

import pandas as pd
import pytest

from salesloop.mail import alert_message_id, build_alert_email, build_ml_owner_email, inline_images
from salesloop.mail.render import fmt_change, fmt_units
from tests.mail.conftest import NOW, sample_batch

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def parts(msg: EmailMessage) -> tuple[str, str]:
    text = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert text is not None and html is not None
    return str(text.get_content()), str(html.get_content())


@pytest.fixture(scope="module")
def batch() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    return sample_batch()


@pytest.fixture(scope="module")
def ca1_email(batch: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]) -> EmailMessage:
    alerts, history, forecasts = batch
    return build_alert_email(
        "ca1@example.com",
        alerts,
        history,
        forecasts,
        sender="salesloop@example.com",
        env="prod",
        interval_level=80,
        now=NOW,
    )


def test_one_email_holds_all_of_the_recipients_alerts(ca1_email: EmailMessage) -> None:
    assert ca1_email["To"] == "ca1@example.com"
    assert ca1_email["From"] == "salesloop@example.com"
    assert ca1_email["X-Salesloop-Alerts"] == "3"
    assert ca1_email["Auto-Submitted"] == "auto-generated"
    # Worst drop first: FOODS_1_001 is 54 % below its same week last year (84 -> 39), the
    # baseline the rule compared with (it is 52 % below its trailing week).
    assert ca1_email["Subject"] == (
        "[salesloop] Demand drop predicted: 3 alerts (FOODS_1_001 at CA_1 \u221254%)"
    )


def test_both_parts_carry_the_same_numbers(ca1_email: EmailMessage) -> None:
    text, html = parts(ca1_email)
    expected = [
        # subjects
        "FOODS_1_001 at CA_1",
        "FOODS_1_002 at CA_1",
        "FOODS at CA_1",
        # horizon dates
        "2016-05-23 to 2016-05-29",
        # FOODS_1_001: trailing baseline, last-year baseline, forecast, interval, drops
        "81.0",
        "84.0",
        "39.0",
        "35.1 to 42.9",
        "\u221252%",
        "\u221254%",
        # aggregate: trailing 151 (-46 % for the forecast of 81 of both series); compared with
        # last year through FOODS_1_001 alone, so its forecast and interval are that series'
        "151",
        "81.0",
        "\u221246%",
        # FOODS_1_002 and the model version
        "42.0",
        "\u221240%",
        "v20160522",
        "80% interval",
    ]
    for needle in expected:
        assert needle in text, f"{needle!r} missing from the text part"
        assert needle in html, f"{needle!r} missing from the HTML part"
    # The aggregate's last-year figure covers only the series that sold then, and says so.
    note = "1 of 2 series sold then; the forecast and interval above are theirs"
    assert note in text and note in html
    # The baseline the rule compared with is named; the change against it leads.
    assert "Change vs same week last year: \u221254%" in text
    assert "Change vs trailing 7 days:     \u221240%" in text
    assert html.count("vs same week last year</span>") == 2
    assert html.count("vs trailing 7 days</span>") == 1
    # A series without last year's week says so instead of inventing a number.
    assert "not available" in text


def test_charts_are_inline_pngs_referenced_by_cid(ca1_email: EmailMessage) -> None:
    assert ca1_email.get_content_type() == "multipart/alternative"
    plain, related = ca1_email.iter_parts()
    assert plain.get_content_type() == "text/plain"
    assert related.get_content_type() == "multipart/related"
    images = inline_images(ca1_email)
    assert len(images) == 3  # one per alert
    _, html = parts(ca1_email)
    referenced = set(re.findall(r'src="cid:([^"]+)"', html))
    assert referenced == set(images)
    for png in images.values():
        assert png.startswith(PNG_MAGIC)
        assert 2_000 < len(png) < 80_000  # a real picture, yet small
    for part in ca1_email.walk():
        if part.get_content_type() == "image/png":
            assert part.get_content_disposition() == "inline"


def test_message_id_is_deterministic(
    batch: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame], ca1_email: EmailMessage
) -> None:
    alerts, history, forecasts = batch
    again = build_alert_email(
        "ca1@example.com",
        alerts.sample(frac=1.0, random_state=3),  # other row order
        history,
        forecasts,
        sender="salesloop@example.com",
        env="prod",
        now=NOW + timedelta(hours=5),  # a retry, later
        max_charts=0,
    )
    keys = alerts.loc[alerts["recipients"] == "ca1@example.com", "alert_key"]
    assert again["Message-ID"] == ca1_email["Message-ID"]
    assert ca1_email["Message-ID"] == alert_message_id("ca1@example.com", keys)
    assert re.fullmatch(r"<[0-9a-f]{32}@salesloop>", str(ca1_email["Message-ID"]))
    other = alert_message_id("ops@example.com", keys)
    fewer = alert_message_id("ca1@example.com", list(keys)[:2])
    assert len({ca1_email["Message-ID"], other, fewer}) == 3


def test_only_the_recipients_alerts_are_included(
    batch: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame],
) -> None:
    alerts, history, forecasts = sample_batch(n_extra=2)
    msg = build_alert_email(
        "ops@example.com",
        alerts,
        history,
        forecasts,
        sender="s@example.com",
        env="dev",
        max_charts=0,
    )
    text, _ = parts(msg)
    assert "HOBBIES_1_000" in text and "FOODS" not in text
    assert msg["Subject"].startswith("[salesloop dev] Demand drop predicted: 3 alerts")
    with pytest.raises(ValueError, match=r"nobody@example\.com"):
        build_alert_email(
            "nobody@example.com", alerts, history, forecasts, sender="s@example.com", env="dev"
        )


def test_charts_stop_at_the_cap_and_the_rest_are_listed() -> None:
    alerts, history, forecasts = sample_batch(n_extra=4)  # ops gets 4 series + 1 aggregate
    msg = build_alert_email(
        "ops@example.com",
        alerts,
        history,
        forecasts,
        sender="s@example.com",
        env="local",
        max_charts=2,
    )
    assert len(inline_images(msg)) == 2
    text, html = parts(msg)
    assert msg["X-Salesloop-Alerts"] == "5"
    for i in range(4):
        assert f"HOBBIES_1_{i:03d} at TX_1" in html
    assert "Charts are drawn for the first 2 alerts" in html
    assert "charts are drawn for the first 2 alerts" in text


def test_missing_forecasts_still_give_an_email_with_the_rows_numbers() -> None:
    alerts, history, forecasts = sample_batch()
    msg = build_alert_email(
        "ca1@example.com",
        alerts,
        history,
        forecasts.iloc[0:0],
        sender="s@example.com",
        env="prod",
    )
    text, html = parts(msg)
    assert inline_images(msg) == {}
    assert "35.1 to 42.9" in text and "35.1 to 42.9" in html
    assert "from 2016-05-23" in text
    # Only the row's own baseline is known: last year's for FOODS_1_001, trailing for 002.
    assert "Baseline, same week last year: 84.0 units (change \u221254%)" in text
    assert "Baseline, trailing 7 days:     70.0 units (change \u221240%)" in text


def test_html_escapes_what_it_did_not_write() -> None:
    alerts, history, forecasts = sample_batch()
    alerts = alerts.assign(model_version="<b>v1</b>")
    msg = build_alert_email(
        "ca1@example.com", alerts, history, forecasts, sender="s@e.com", env="prod", max_charts=0
    )
    _, html = parts(msg)
    assert "<b>v1</b>" not in html
    assert "&lt;b&gt;v1&lt;/b&gt;" in html


def test_formatting_of_units_and_changes() -> None:
    assert fmt_units(1234.4) == "1,234"
    assert fmt_units(12.34) == "12.3"
    assert fmt_units(float("nan")) == "n/a"
    assert fmt_change(0.42) == "\u221242%"
    assert fmt_change(-0.1) == "+10%"


def test_ml_owner_notice_lists_metrics_breaches_first_with_optional_chart() -> None:
    metrics = pd.DataFrame(
        [
            {
                "metric": "mase",
                "scope": "overall",
                "value": 0.91,
                "threshold": 1.2,
                "breached": False,
                "window_start": "2016-05-01",
                "window_end": "2016-05-28",
                "model_version": "v1",
            },
            {
                "metric": "psi_units",
                "scope": "feature:lag_7",
                "value": 0.31,
                "threshold": 0.2,
                "breached": True,
                "window_start": "2016-05-01",
                "window_end": "2016-05-28",
                "model_version": "v1",
            },
        ]
    )
    png = PNG_MAGIC + b"fake"
    msg = build_ml_owner_email(
        "ml-owner@example.com",
        title="feature drift",
        metrics=metrics,
        sender="salesloop@example.com",
        env="prod",
        summary="Retraining was triggered.",
        run_id="run-42",
        chart_png=png,
        now=NOW,
    )
    assert msg["Subject"] == "[salesloop] Monitoring: feature drift (1 breached)"
    text, html = parts(msg)
    for needle in ("psi_units", "feature:lag_7", "0.31", "0.2", "mase", "0.91", "1.2", "run-42"):
        assert needle in text and needle in html
    assert text.index("psi_units") < text.index("mase")  # breaches first
    assert "BREACHED" in text and "BREACHED" in html
    assert "2016-05-01 to 2016-05-28" in text
    (cid,) = inline_images(msg)
    assert f'src="cid:{cid}"' in html
    again = build_ml_owner_email(
        "ml-owner@example.com",
        title="feature drift",
        metrics=metrics.iloc[::-1],
        sender="salesloop@example.com",
        env="prod",
        run_id="run-42",
    )
    assert again["Message-ID"] == msg["Message-ID"]
    assert inline_images(again) == {}
