"""Opening hours in local time, turned into UTC spans: overnight periods, 24 h days and DST."""

from __future__ import annotations

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

from backend.carparks.hours import Period, is_open_throughout, open_spans

LONDON = ZoneInfo("Europe/London")
NEW_YORK = ZoneInfo("America/New_York")
WEEKDAYS_7_TO_22 = [Period(day, time(7), time(22), False) for day in range(5)]
ALL_DAY = [Period(day, time(0), time(0), True) for day in range(7)]


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_window_inside_a_day_period_is_open():
    # Tuesday 2026-12-01 is GMT: local time equals UTC.
    assert is_open_throughout(WEEKDAYS_7_TO_22, LONDON, utc(2026, 12, 1, 8), utc(2026, 12, 1, 21))


def test_window_crossing_closing_time_is_not_open():
    assert not is_open_throughout(WEEKDAYS_7_TO_22, LONDON, utc(2026, 12, 1, 21), utc(2026, 12, 1, 23))


def test_closed_weekday_is_not_open():
    # Saturday 2026-12-05 has no period.
    assert not is_open_throughout(WEEKDAYS_7_TO_22, LONDON, utc(2026, 12, 5, 10), utc(2026, 12, 5, 11))


def test_overnight_period_runs_into_the_next_morning():
    friday_night = [Period(4, time(18), time(2), True)]
    assert is_open_throughout(friday_night, LONDON, utc(2026, 12, 4, 23), utc(2026, 12, 5, 1, 30))
    assert not is_open_throughout(friday_night, LONDON, utc(2026, 12, 5, 1, 30), utc(2026, 12, 5, 3))


def test_consecutive_24h_days_merge_into_one_span():
    spans = open_spans(ALL_DAY, LONDON, utc(2026, 12, 1, 10), utc(2026, 12, 9, 10))
    assert len(spans) == 1
    assert is_open_throughout(ALL_DAY, LONDON, utc(2026, 12, 1, 10), utc(2026, 12, 9, 10))


def test_opening_hours_follow_local_time_across_the_dst_change():
    # Summer: 07:00 in London is 06:00 UTC. Winter: 07:00 is 07:00 UTC.
    summer_tuesday = utc(2026, 7, 7, 6, 30)
    winter_tuesday = utc(2026, 12, 1, 6, 30)
    assert is_open_throughout(WEEKDAYS_7_TO_22, LONDON, summer_tuesday, utc(2026, 7, 7, 7))
    assert not is_open_throughout(WEEKDAYS_7_TO_22, LONDON, winter_tuesday, utc(2026, 12, 1, 7))


def test_a_24h_day_on_the_autumn_dst_change_lasts_25_hours():
    # Sunday 2026-10-25: clocks go back, the local day is 25 hours long.
    sunday = [Period(6, time(0), time(0), True)]
    spans = open_spans(sunday, LONDON, utc(2026, 10, 25, 0), utc(2026, 10, 25, 23))
    assert spans == [(utc(2026, 10, 24, 23), utc(2026, 10, 26, 0))]


def test_a_24h_day_on_the_spring_dst_change_lasts_23_hours():
    sunday = [Period(6, time(0), time(0), True)]
    spans = open_spans(sunday, LONDON, utc(2026, 3, 29, 1), utc(2026, 3, 29, 20))
    assert spans == [(utc(2026, 3, 29, 0), utc(2026, 3, 29, 23))]


def test_another_time_zone_uses_its_own_local_hours():
    # 07:00-22:00 in New York (EST, UTC-5) is 12:00-03:00 UTC.
    assert is_open_throughout(WEEKDAYS_7_TO_22, NEW_YORK, utc(2026, 12, 1, 12), utc(2026, 12, 2, 3))
    assert not is_open_throughout(WEEKDAYS_7_TO_22, NEW_YORK, utc(2026, 12, 1, 8), utc(2026, 12, 1, 9))
