"""import_occupancy command, occupancy_record (upsert, DST hours) and history read-back."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from io import StringIO
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from backend.accounts.models import Company
from backend.carparks.models import CarPark
from pricing.forecasting import read_occupancy_csv
from pricing.history import history_by_car_park, series_from_db
from pricing.models import ExternalCarPark, OccupancyHour, OccupancyImport, OccupancySource
from pricing.services import occupancy_record
from tests.factories import CarParkFactory
from tests.shared_data import BIRMINGHAM

LONDON = ZoneInfo("Europe/London")

# Two car parks, summer time (BST = UTC+1). Line by line: kept, kept (same hour), duplicate,
# negative, above capacity (clipped), unparseable, kept, kept.
SMALL_CSV = """SystemCodeNumber,Capacity,Occupancy,LastUpdated
North Deck,100,40,2016-06-01 08:05:00
North Deck,100,50,2016-06-01 08:35:00
North Deck,100,50,2016-06-01 08:35:00
North Deck,100,-3,2016-06-01 09:05:00
North Deck,100,130,2016-06-01 09:35:00
North Deck,100,oops,2016-06-01 10:05:00
South Yard,40,10,2016-06-01 08:10:00
South Yard,40,30,2016-06-02 08:10:00
"""


def _import(path: Path, *args: str) -> dict:
    out, err = StringIO(), StringIO()
    call_command("import_occupancy", str(path), "--json", *args, stdout=out, stderr=err)
    assert "Done in" in err.getvalue()  # progress goes to stderr, the report alone to stdout
    return json.loads(out.getvalue())


@pytest.fixture
def small_csv(tmp_path: Path) -> Path:
    path = tmp_path / "small-city.csv"
    path.write_text(SMALL_CSV)
    return path


CREATE = ("--create-carparks", "--operator", "City Parking", "--near", "52.48,-1.90")


def _rows() -> list[tuple[str, datetime, Decimal, int, int]]:
    return list(
        OccupancyHour.objects.order_by("car_park__name", "hour_start").values_list(
            "car_park__name", "hour_start", "occupied", "capacity", "readings"
        )
    )


@pytest.mark.django_db
def test_import_creates_car_parks_and_hourly_means(small_csv: Path) -> None:
    result = _import(small_csv, *CREATE)

    report = result["report"]
    assert report["rows_read"] == 8
    assert report["rows_kept"] == 5
    assert report["dropped"] == {"duplicate": 1, "negative": 1, "unparseable": 1}
    assert report["above_capacity"] == 1
    assert report["clipped_above_capacity"] == 1
    assert result["car_parks_created"] == ["North Deck", "South Yard"]
    assert result["rows_written"] == 4
    # 08:05 and 08:35 BST average into the 08:00 local hour = 07:00 UTC; 09:35 is clipped to 100.
    assert _rows() == [
        ("North Deck", datetime(2016, 6, 1, 7, tzinfo=UTC), Decimal("45.00"), 100, 2),
        ("North Deck", datetime(2016, 6, 1, 8, tzinfo=UTC), Decimal("100.00"), 100, 1),
        ("South Yard", datetime(2016, 6, 1, 7, tzinfo=UTC), Decimal("10.00"), 40, 1),
        ("South Yard", datetime(2016, 6, 2, 7, tzinfo=UTC), Decimal("30.00"), 40, 1),
    ]
    north, south = CarPark.objects.order_by("name")
    assert north.company.name == "City Parking"
    assert (north.total_capacity, south.total_capacity) == (100, 40)
    assert (north.timezone, north.currency) == ("Europe/London", "GBP")
    assert (north.latitude, north.longitude) != (south.latitude, south.longitude)
    for car_park in (north, south):
        assert abs(car_park.latitude - 52.48) < 0.02
        assert abs(car_park.longitude + 1.90) < 0.03
        assert car_park.opening_periods.count() == 7
    assert set(ExternalCarPark.objects.values_list("source_name", "code")) == {
        ("small-city", "North Deck"),
        ("small-city", "South Yard"),
    }


@pytest.mark.django_db
def test_import_rerun_is_idempotent(small_csv: Path) -> None:
    _import(small_csv, *CREATE)
    before = _rows()
    places = list(CarPark.objects.order_by("name").values_list("latitude", "longitude"))

    again = _import(small_csv, *CREATE)

    assert again["car_parks_created"] == []
    assert _rows() == before
    assert list(CarPark.objects.order_by("name").values_list("latitude", "longitude")) == places
    assert Company.objects.filter(name="City Parking").count() == 1
    assert OccupancyImport.objects.count() == 2


@pytest.mark.django_db
def test_import_without_create_skips_unknown_codes_and_uses_mapping(small_csv: Path) -> None:
    car_park = CarParkFactory(name="Our North Deck", standard_bays=100, accessible_bays=0, ev_charging_bays=0)
    ExternalCarPark.objects.create(source_name="small-city", code="North Deck", car_park=car_park)

    result = _import(small_csv)

    assert result["car_parks_mapped"] == {"North Deck": car_park.pk}
    assert list(result["skipped_codes"]) == ["South Yard"]
    assert set(OccupancyHour.objects.values_list("car_park_id", flat=True)) == {car_park.pk}
    assert CarPark.objects.count() == 1


@pytest.mark.django_db
def test_import_drop_policy_and_readable_report(small_csv: Path) -> None:
    out, err = StringIO(), StringIO()
    call_command("import_occupancy", str(small_csv), *CREATE, "--over-capacity", "drop", stdout=out, stderr=err)

    text = out.getvalue()
    assert "rows read                   8" in text
    assert "dropped, > capacity         1" in text
    assert "[1/2] North Deck" in err.getvalue()
    assert not OccupancyHour.objects.filter(hour_start=datetime(2016, 6, 1, 8, tzinfo=UTC)).exists()


@pytest.mark.django_db
def test_import_refuses_create_without_operator(small_csv: Path) -> None:
    with pytest.raises(CommandError, match="--operator"):
        call_command("import_occupancy", str(small_csv), "--create-carparks", stdout=StringIO(), stderr=StringIO())
    assert not OccupancyHour.objects.exists()


@pytest.mark.django_db
def test_import_birmingham_report_counts() -> None:
    result = _import(BIRMINGHAM, *CREATE)

    report = result["report"]
    assert report["rows_read"] == 35717
    assert report["above_capacity"] == 373
    assert report["negative"] == 12
    assert report["duplicates"] == 216
    assert report["dropped"]["unparseable"] == 0
    assert report["rows_kept"] == 35717 - 216 - 12
    assert report["car_parks"] == 30
    assert report["gaps"]["missing_for_all_car_parks"] == ["2016-10-20", "2016-10-21", "2016-12-03", "2016-12-04"]
    assert len(result["car_parks_created"]) == 30
    assert result["rows_written"] == report["hourly_points"] == OccupancyHour.objects.count()
    # Read back from the database, the series are bit for bit the CSV reader's.
    from_csv = read_occupancy_csv(BIRMINGHAM, tz="Europe/London").series
    from_db = series_from_db(source=OccupancySource.IMPORT)
    assert [s.code for s in from_db] == [s.code for s in from_csv]
    for db_series, csv_series in zip(from_db, from_csv, strict=True):
        assert db_series.capacity == csv_series.capacity
        assert np.array_equal(db_series.local_hour, csv_series.local_hour)
        assert np.array_equal(db_series.occupied, csv_series.occupied)
        assert np.array_equal(db_series.n_readings, csv_series.n_readings)


# --- occupancy_record --------------------------------------------------------------------------


@pytest.mark.django_db
def test_record_upserts_one_source_and_leaves_others(car_park: CarPark) -> None:
    ten = datetime(2026, 6, 1, 10, tzinfo=LONDON)
    occupancy_record(car_park_id=car_park.pk, source="gate", hours={ten: 40}, capacity=100)
    written = occupancy_record(
        car_park_id=car_park.pk, source="bookings", hours={ten: 12.5, ten + timedelta(hours=1): 20}, capacity=100
    )
    assert written == 2

    again = occupancy_record(
        car_park_id=car_park.pk, source="bookings", hours={ten + timedelta(minutes=30): Decimal("15")}, capacity=100
    )

    assert again == 1
    assert list(
        OccupancyHour.objects.order_by("hour_start", "source").values_list("hour_start", "source", "occupied")
    ) == [
        (datetime(2026, 6, 1, 9, tzinfo=UTC), "bookings", Decimal("15.00")),
        (datetime(2026, 6, 1, 9, tzinfo=UTC), "gate", Decimal("40.00")),
        (datetime(2026, 6, 1, 10, tzinfo=UTC), "bookings", Decimal("20.00")),
    ]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("hours", "message"),
    [
        ({datetime(2026, 6, 1, 10): 1}, "timezone-aware"),  # noqa: DTZ001 - the naive value is the point
        ({datetime(2026, 6, 1, 10, tzinfo=UTC): -1}, "negative"),
        ({datetime(2026, 6, 1, 10, tzinfo=UTC): 1, datetime(2026, 6, 1, 10, 30, tzinfo=UTC): 2}, "two values"),
    ],
)
def test_record_refuses_bad_input_and_writes_nothing(car_park: CarPark, hours: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        occupancy_record(car_park_id=car_park.pk, source="gate", hours=hours, capacity=100)
    assert not OccupancyHour.objects.exists()


@pytest.mark.django_db
def test_record_spring_forward_day_has_23_hours(car_park: CarPark) -> None:
    # 2026-03-29: clocks go from 01:00 GMT to 02:00 BST. The local day is 23 UTC hours long.
    day_start = datetime(2026, 3, 29, tzinfo=LONDON).astimezone(UTC)
    hours = {day_start + timedelta(hours=i): 10 + i for i in range(23)}
    assert datetime(2026, 3, 30, tzinfo=LONDON).astimezone(UTC) == day_start + timedelta(hours=23)

    assert occupancy_record(car_park_id=car_park.pk, source="gate", hours=hours, capacity=100) == 23

    series = history_by_car_park()[car_park.pk]
    local = series.local_hour.astype("datetime64[h]").astype(datetime)
    assert [h.hour for h in local] == [0, *range(2, 24)]  # local 01:00 does not exist that day
    assert list(series.occupied[:3]) == [10.0, 11.0, 12.0]


@pytest.mark.django_db
def test_record_fall_back_day_has_25_hours_merged_into_24_local(car_park: CarPark) -> None:
    # 2026-10-25: clocks go from 02:00 BST back to 01:00 GMT. The local day is 25 UTC hours long.
    day_start = datetime(2026, 10, 25, tzinfo=LONDON).astimezone(UTC)
    hours = {day_start + timedelta(hours=i): 10 + i for i in range(25)}

    assert occupancy_record(car_park_id=car_park.pk, source="gate", hours=hours, capacity=100, readings=2) == 25
    starts = list(OccupancyHour.objects.values_list("hour_start", flat=True))
    assert len(set(starts)) == 25
    # The two local 01:00 hours are distinct instants: 00:00 UTC (BST) and 01:00 UTC (GMT). Keys are
    # given in UTC: two aware datetimes in one ZoneInfo compare equal whatever their fold.
    first, second = datetime(2026, 10, 25, 0, 30, tzinfo=UTC), datetime(2026, 10, 25, 1, 30, tzinfo=UTC)
    assert first.astimezone(LONDON).hour == second.astimezone(LONDON).hour == 1
    occupancy_record(car_park_id=car_park.pk, source="gate", hours={first: 50, second: 70}, capacity=100, readings=2)
    assert OccupancyHour.objects.get(hour_start=datetime(2026, 10, 25, 0, tzinfo=UTC)).occupied == 50
    assert OccupancyHour.objects.get(hour_start=datetime(2026, 10, 25, 1, tzinfo=UTC)).occupied == 70

    series = history_by_car_park()[car_park.pk]
    local = series.local_hour.astype("datetime64[h]").astype(datetime)
    assert [h.hour for h in local] == list(range(24))
    assert series.occupied[1] == 60.0  # both 01:00 hours, weighted by their readings
    assert series.n_readings[1] == 4


@pytest.mark.django_db
def test_history_prefers_gate_over_import_over_bookings(car_park: CarPark) -> None:
    ten = datetime(2026, 6, 1, 10, tzinfo=LONDON)
    eleven = ten + timedelta(hours=1)
    occupancy_record(car_park_id=car_park.pk, source="bookings", hours={ten: 5, eleven: 6}, capacity=100)
    occupancy_record(car_park_id=car_park.pk, source="import", hours={ten: 30, eleven: 31}, capacity=100)
    occupancy_record(car_park_id=car_park.pk, source="gate", hours={ten: 50}, capacity=100)

    series = history_by_car_park()[car_park.pk]

    assert list(series.occupied) == [50.0, 31.0]
    assert list(history_by_car_park(source="bookings")[car_park.pk].occupied) == [5.0, 6.0]
