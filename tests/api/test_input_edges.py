"""Input at the edges: dates far out, windows too long, ids and pages past what the database holds,
JSON nested too deep. Each is a 400/404 problem that changes nothing, never a 500."""

from __future__ import annotations

from datetime import timedelta

import pytest

from backend.carparks.models import Closure
from backend.core import clock
from bookings.models import CapacitySlot, GateEvent
from pricing.models import RateOverride

pytestmark = pytest.mark.django_db

FAR_PAST_WITH_OFFSET = "0001-01-01T00:00:00+14:00"  # its UTC time is before year 1
FAR_FUTURE = "9999-12-31T23:59:59Z"
TOO_BIG = "99999999999999999999999"


def soon(days: int = 10) -> str:
    return (clock.now() + timedelta(days=days)).replace(minute=0, second=0, microsecond=0).isoformat()


def assert_problem(response, status: int, field: str | None = None) -> None:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    if field is not None:
        assert field in [error["field"] for error in response.json()["errors"]], response.json()


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/v1/carparks/{id}/availability?start={start}&end={far}", "end"),
        ("/api/v1/carparks?lat=52.48&lng=-1.9&start={start}&end={far}", "end"),
        ("/api/v1/carparks/{id}/quote?start={past}&end={start}", "start"),
        ("/api/v1/carparks/{id}/rates/explain?at=0001-01-01T00:00:00Z", "at"),
    ],
)
def test_dates_outside_the_supported_years_are_400(api, operator, car_park, path, field):
    url = path.format(id=car_park.pk, start=soon(), far=FAR_FUTURE, past=FAR_PAST_WITH_OFFSET.replace("+", "%2B"))
    assert_problem(api(operator).get(url), 400, field)


@pytest.mark.parametrize("query", ["gate-events?since=", "gate-events?until="])
def test_filters_refuse_dates_outside_the_supported_years(api, operator, car_park, query):
    url = f"/api/v1/carparks/{car_park.pk}/{query}{FAR_PAST_WITH_OFFSET.replace('+', '%2B')}"
    assert_problem(api(operator).get(url), 400)


def test_a_search_or_availability_window_longer_than_the_longest_stay_is_400(api, car_park):
    start, end = soon(), soon(days=10 + 31)
    assert_problem(api(None).get(f"/api/v1/carparks/{car_park.pk}/availability?start={start}&end={end}"), 400, "end")
    assert_problem(api(None).get(f"/api/v1/carparks?lat=52.48&lng=-1.9&start={start}&end={end}"), 400, "end")


@pytest.mark.parametrize(
    ("starts_at", "ends_at", "field"),
    [
        ("0001-01-01T00:00:00Z", "2030-01-01T00:00:00Z", "starts_at"),
        ("2030-01-01T00:00:00Z", FAR_FUTURE, "ends_at"),
        ("2030-01-01T00:00:00Z", "2032-01-01T00:00:00Z", "ends_at"),  # two years: too long
        ("2020-01-01T00:00:00Z", "2020-01-02T00:00:00Z", "ends_at"),  # over already
    ],
)
def test_far_long_or_past_closures_are_400_and_store_nothing(api, operator, car_park, starts_at, ends_at, field):
    body = {"starts_at": starts_at, "ends_at": ends_at, "reason": "Works"}
    assert_problem(api(operator).post(f"/api/v1/carparks/{car_park.pk}/closures", body, format="json"), 400, field)
    assert not Closure.objects.exists()
    assert not CapacitySlot.objects.exists()


def test_a_rate_override_in_year_one_is_400(api, operator, car_park):
    body = {"starts_at": "0001-01-01T00:00:00Z", "ends_at": "2030-01-01T00:00:00Z", "rate": "3.00"}
    response = api(operator).post(f"/api/v1/carparks/{car_park.pk}/rate-overrides", body, format="json")
    assert_problem(response, 400, "starts_at")
    assert not RateOverride.objects.exists()


def test_a_gate_passage_in_year_one_is_400_and_records_nothing(api, operator, car_park):
    body = {"plate": "AB12CDE", "occurred_at": "0001-01-01T00:00:00Z"}
    assert_problem(api(operator).post(f"/api/v1/carparks/{car_park.pk}/entries", body, format="json"), 400)
    assert not GateEvent.objects.exists()


def test_ids_and_pages_beyond_the_database_are_400_or_404(api, driver, car_park):
    assert_problem(api(driver).get(f"/api/v1/bookings?car_park={TOO_BIG}"), 400, "car_park")
    assert_problem(api(driver).get("/api/v1/bookings?car_park=1.5"), 400, "car_park")
    assert_problem(api(None).get(f"/api/v1/carparks?lat=52.48&lng=-1.9&page={TOO_BIG}"), 404)
    assert_problem(api(None).get(f"/api/v1/carparks?page={TOO_BIG}"), 404)


@pytest.mark.parametrize("zero", ["\u0660", "\uff10"])  # Arabic-Indic and full-width digits
def test_ids_are_ascii_digits_only(api, operator, car_park, zero):
    lookalike = "".join(chr(ord(zero) + int(digit)) for digit in str(car_park.pk))
    assert_problem(api(operator).delete(f"/api/v1/carparks/{lookalike}"), 404)
    car_park.refresh_from_db()
    assert car_park.archived_at is None


def test_json_nested_too_deep_is_a_400(api):
    body = "[" * 5000 + "]" * 5000
    response = api(None).post("/api/v1/auth/token", body, content_type="application/json")
    assert_problem(response, 400)


def test_a_period_missing_its_fields_in_a_partial_update_is_400(api, operator, car_park):
    body = {"opening_hours": [{"opens": "07:00", "closes": "20:00"}]}
    assert_problem(api(operator).patch(f"/api/v1/carparks/{car_park.pk}", body, format="json"), 400)
    assert car_park.opening_periods.count() == 7


def test_a_gate_passage_reported_more_than_a_week_late_is_400(api, operator, car_park):
    body = {"plate": "AB12CDE", "occurred_at": (clock.now() - timedelta(days=8)).isoformat()}
    assert_problem(api(operator).post(f"/api/v1/carparks/{car_park.pk}/entries", body, format="json"), 400)
    assert not GateEvent.objects.exists()


def test_a_body_over_the_upload_limit_is_413(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = '{"email": "' + "a" * 2000 + '@example.test", "password": "x"}'
    response = api(None).post("/api/v1/auth/token", body, content_type="application/json")
    assert_problem(response, 413)
    assert response.json()["code"] == "payload_too_large"


def test_a_format_query_parameter_does_not_turn_a_resource_into_a_404(api, car_park):
    response = api(None).get(f"/api/v1/carparks/{car_park.pk}?format=xml")
    assert response.status_code == 200
    assert response.json()["id"] == car_park.pk
