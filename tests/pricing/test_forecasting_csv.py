"""CSV import: data-quality counts on the real Birmingham file, hourly aggregation, DST."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pytest

from pricing.forecasting.csv_reader import read_occupancy_csv
from tests.shared_data import BIRMINGHAM

needs_data = pytest.mark.skipif(not BIRMINGHAM.exists(), reason="Birmingham CSV not available")


def local(*args: int) -> datetime:
    """A naive LOCAL wall-clock datetime (the convention of the CSV and of the model's hours)."""
    return datetime(*args)  # noqa: DTZ001 - naive on purpose


@needs_data
@pytest.mark.parametrize("policy", ["clip", "drop"])
def test_report_counts_on_real_file(policy: str) -> None:
    result = read_occupancy_csv(BIRMINGHAM, tz="Europe/London", over_capacity=policy)
    report = result.report
    assert report.rows_read == 35717
    assert report.duplicates == 216
    assert report.negative == 12
    assert report.above_capacity == 373
    assert report.dropped["duplicate"] == 216
    assert report.dropped["negative"] == 12
    assert report.dropped["unparseable"] == 0
    if policy == "clip":
        assert report.clipped_above_capacity == 373
        assert "above_capacity" not in report.dropped
    else:
        assert report.clipped_above_capacity == 0
        assert report.dropped["above_capacity"] == 373
    assert report.rows_kept == report.rows_read - sum(report.dropped.values())
    assert report.car_parks == 30
    assert report.days_missing_for_all == (
        date(2016, 10, 20),
        date(2016, 10, 21),
        date(2016, 12, 3),
        date(2016, 12, 4),
    )
    # NIA North: readings on 9 days spread over 2016-10-16 .. 2016-12-19 -> many gap days.
    assert len(report.gaps_by_car_park["NIA North"]) > 30
    json.dumps(report.to_dict())  # JSON-able


@needs_data
def test_real_file_hourly_output() -> None:
    result = read_occupancy_csv(BIRMINGHAM, tz="Europe/London")
    by_code = result.by_code()
    assert "Broad Street" in by_code  # id with a space
    series = by_code["BHMBCCMKT01"]
    assert series.capacity == 577
    assert np.all(np.diff(series.local_hour.astype("int64")) > 0)
    first = series.points[0]
    # 2016-10-04 07:59:42 is the first reading; 07:00 BST is 06:00 UTC.
    assert first.local_hour == local(2016, 10, 4, 7)
    assert first.utc_hour == datetime(2016, 10, 4, 6, tzinfo=UTC)
    assert first.occupied == 61
    assert first.n_readings == 1
    assert first.rate == pytest.approx(61 / 577)
    rates = np.concatenate([s.rate for s in result.series])
    assert rates.min() >= 0
    assert rates.max() <= 1


def _write(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "tiny.csv"
    path.write_text("SystemCodeNumber,Capacity,Occupancy,LastUpdated\n" + "\n".join(lines) + "\n")
    return path


def test_hourly_mean_aggregation_with_dst(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        [
            # Saturday 2016-10-29, BST (UTC+1): hour 08 = mean(50, 70), hour 09 = 80.
            "Car Park A,100,50,2016-10-29 08:00:00",
            "Car Park A,100,70,2016-10-29 08:30:00",
            "Car Park A,100,80,2016-10-29 09:00:00",
            "Car Park A,100,80,2016-10-29 09:00:00",  # exact duplicate
            "Car Park A,100,-3,2016-10-29 09:30:00",  # negative
            "Car Park A,100,120,2016-10-29 10:00:00",  # above capacity -> clipped to 100
            # Sunday 2016-10-30: clocks go back at 02:00 BST -> 01:00 GMT, so 01:xx happens twice.
            # Wall-clock readings in 01:00-02:00 form ONE local hour; its UTC start uses fold=0.
            "Car Park A,100,10,2016-10-30 00:50:00",
            "Car Park A,100,20,2016-10-30 01:10:00",
            "Car Park A,100,30,2016-10-30 01:40:00",
            "Car Park A,100,40,2016-10-30 02:05:00",
            "Car Park A,100,60,2016-10-30 08:15:00",
            "Car Park B,200,100,2016-10-27 12:00:00",
            "Car Park B,200,150,2016-10-29 12:00:00",
            "Car Park A,100,oops,2016-10-30 09:00:00",  # unparseable occupancy
            "Car Park A,100,5,2016-13-45 09:00:00",  # unparseable timestamp
            "garbage",  # too few fields
        ],
    )
    result = read_occupancy_csv(path, tz="Europe/London")
    report = result.report
    assert report.rows_read == 16
    assert report.dropped == {"duplicate": 1, "negative": 1, "unparseable": 3}
    assert report.rows_kept == 11
    assert report.clipped_above_capacity == 1
    assert report.above_capacity == 1
    assert report.unparseable_lines == (15, 16, 17)  # file line numbers (header = 1)
    # Car Park B has no data on 10-28 inside its own range; nobody has data on 10-28.
    assert report.gaps_by_car_park == {"Car Park A": (), "Car Park B": (date(2016, 10, 28),)}
    assert report.days_missing_for_all == (date(2016, 10, 28),)

    a = {p.local_hour: p for p in result.by_code()["Car Park A"].points}
    h8 = a[local(2016, 10, 29, 8)]
    assert (h8.occupied, h8.n_readings, h8.rate) == (60.0, 2, 0.6)
    assert h8.utc_hour == datetime(2016, 10, 29, 7, tzinfo=UTC)
    assert a[local(2016, 10, 29, 10)].occupied == 100.0  # clipped
    assert local(2016, 10, 29, 9) in a
    assert a[local(2016, 10, 29, 9)].n_readings == 1
    # DST day: 00:00 local = 23:00 UTC the day before (BST); the repeated 01:00 hour -> 00:00 UTC
    # (fold=0, first occurrence); 02:00 local is GMT again = 02:00 UTC.
    dst = [p for p in a.values() if p.local_hour.date() == date(2016, 10, 30)]
    assert [(p.local_hour.hour, p.occupied, p.n_readings) for p in dst] == [
        (0, 10.0, 1),
        (1, 25.0, 2),
        (2, 40.0, 1),
        (8, 60.0, 1),
    ]
    assert [p.utc_hour.hour for p in dst] == [23, 0, 2, 8]
    assert dst[0].utc_hour.date() == date(2016, 10, 29)


def test_drop_policy_and_bad_policy(tmp_path: Path) -> None:
    path = _write(tmp_path, ["P,10,11,2016-10-29 08:00:00", "P,10,5,2016-10-29 08:30:00"])
    result = read_occupancy_csv(path, tz="Europe/London", over_capacity="drop")
    assert result.report.dropped["above_capacity"] == 1
    assert result.series[0].occupied.tolist() == [5.0]
    with pytest.raises(ValueError, match="over_capacity"):
        read_occupancy_csv(path, tz="Europe/London", over_capacity="keep")  # type: ignore[arg-type]
