"""The age of an event, from its CloudEvent ``time``, on well-formed and garbled values.

Decision (documented in salesloop/dead_letter.py): a missing or unreadable ``time`` makes the age
unknown, and an event of unknown age is treated as young: it keeps failing (and is redelivered)
instead of being acknowledged. So whatever ``time`` holds, the age is a finite number or None,
computing it never raises, and a failing event of unknown age never reaches the sink.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from salesloop.dead_letter import GiveUpRule, event_age_s, event_time
from tests.dead_letter.conftest import Failing

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)

offsets = st.timedeltas(
    min_value=timedelta(hours=-23, minutes=-59), max_value=timedelta(hours=23, minutes=59)
).map(lambda d: timezone(timedelta(minutes=int(d.total_seconds() // 60))))
aware = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=offsets
)


def rfc3339(dt: datetime, zulu: bool, sep: str, frac: bool) -> str:
    text = dt.isoformat(sep=sep, timespec="microseconds" if frac else "seconds")
    return text.replace("+00:00", "Z") if zulu else text


well_formed = st.builds(
    rfc3339, aware, st.booleans(), st.sampled_from(["T", "t", " "]), st.booleans()
)
garbled = st.one_of(
    st.none(),
    st.text(max_size=80),
    st.binary(max_size=40),
    st.integers(),
    st.floats(),
    st.booleans(),
    st.lists(st.text(max_size=5), max_size=3),
    st.datetimes(),  # naive: no defined age
    well_formed.map(lambda s: s[: len(s) // 2]),  # truncated
    well_formed.map(lambda s: s + "x"),
    well_formed.map(lambda s: s.replace("-", "/", 1)),
    st.just("9" * 10_000),
)


def event(time_value: Any, *, present: bool = True) -> dict[str, Any]:
    attrs: dict[str, Any] = {"id": "e", "source": "s", "type": "t", "specversion": "1.0"}
    if present:
        attrs["time"] = time_value
    return attrs


@settings(max_examples=400, deadline=None)
@given(st.one_of(well_formed, garbled), st.booleans())
def test_age_is_finite_or_unknown_and_never_raises(value: Any, present: bool) -> None:
    age = event_age_s(event(value, present=present), NOW)
    assert age is None or (isinstance(age, float) and math.isfinite(age))
    if not present or value is None:
        assert age is None


@settings(max_examples=300, deadline=None)
@given(aware, st.booleans(), st.sampled_from(["T", "t", " "]), st.booleans())
def test_a_well_formed_time_gives_the_exact_age(
    dt: datetime, zulu: bool, sep: str, frac: bool
) -> None:
    text = rfc3339(dt, zulu and dt.utcoffset() == timedelta(0), sep, frac)
    expected = (NOW - datetime.fromisoformat(text.replace("Z", "+00:00"))).total_seconds()
    assert event_age_s(event(text), NOW) == pytest.approx(expected, abs=1e-6)
    assert event_age_s(event(dt), NOW) == pytest.approx((NOW - dt).total_seconds(), abs=1e-6)


@settings(max_examples=300, deadline=None)
@given(st.one_of(garbled, st.datetimes().map(lambda d: d.isoformat())))
def test_a_failing_event_of_unknown_age_is_never_given_up_on(value: Any) -> None:
    published: list[Any] = []

    class Sink:
        def publish(self, ev: Any, reason: str, age_s: float) -> None:
            published.append(ev)

    ev = event(value)
    if event_time(ev) is not None:
        return  # a readable time (e.g. a generated string that happens to be RFC 3339)
    rule = GiveUpRule(Failing(), Sink(), max_age_s=1e-9, clock=lambda: NOW)
    with pytest.raises(RuntimeError, match="warehouse unavailable"):
        rule.handle(ev)
    assert published == []


@pytest.mark.parametrize(
    ("age", "given_up"),
    [
        (timedelta(hours=23), False),  # exactly the limit: still young
        (timedelta(hours=23, seconds=1), True),
        (timedelta(hours=-2), False),  # from the future (clock skew): young
    ],
)
def test_the_limit_is_exclusive_and_future_events_are_young(age: timedelta, given_up: bool) -> None:
    published: list[Any] = []

    class Sink:
        def publish(self, ev: Any, reason: str, age_s: float) -> None:
            published.append(age_s)

    rule = GiveUpRule(Failing(), Sink(), max_age_s=23 * 3600, clock=lambda: NOW)
    ev = event((NOW - age).isoformat())
    if given_up:
        assert rule.handle(ev).status == "dead_lettered"
        assert published == [pytest.approx(age.total_seconds())]
    else:
        with pytest.raises(RuntimeError):
            rule.handle(ev)
        assert published == []
