"""Operator rate API: permissions, field errors, calendar, explain, history, forecast."""

from __future__ import annotations

import struct
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.urls import NoReverseMatch, include, path, re_path, reverse
from rest_framework.test import APIClient

from backend.accounts.models import User
from backend.api.errors import not_found_view
from backend.audit.models import AuditEntry
from backend.carparks.models import CarPark
from pricing import rates
from pricing.models import OccupancyHour, RateOverride, RateRule

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 6, 1, 9, 30, tzinfo=UTC)
RULE = {"base_rate": "2.00", "minimum": "1.00", "maximum": "6.00", "max_daily_change": "0.50", "step": "0.10"}


def url(car_park: CarPark, tail: str) -> str:
    return f"/api/v1/carparks/{car_park.pk}/{tail}"


# Until backend/urls.py includes pricing.api.urls, these tests mount the routes themselves.
urlpatterns = [path("api/v1/", include("pricing.api.urls")), re_path(r"^", not_found_view)]


@pytest.fixture(autouse=True)
def frozen(time_machine: Any, settings: Any) -> None:
    time_machine.move_to(NOW, tick=False)
    try:
        reverse("rate-rule", kwargs={"car_park_id": 1})
    except NoReverseMatch:
        settings.ROOT_URLCONF = __name__


@pytest.fixture
def op(api: Callable[[User | None], APIClient], operator: User) -> APIClient:
    return api(operator)


def fields_of(response: Any) -> dict[str, str]:
    assert response.status_code == 400, response.content
    assert response["Content-Type"].startswith("application/problem+json")
    return {error["field"]: error["code"] for error in response.json()["errors"]}


def test_operator_sets_the_rule_with_band_in_percent_and_it_is_audited(op: APIClient, car_park: CarPark) -> None:
    response = op.put(url(car_park, "rate-rule"), {**RULE, "band_low": 60, "band_high": 80.5}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["band_low"] == 60.0
    assert body["band_high"] == 80.5
    assert body["minimum"] == "1.00"
    assert body["currency"] == "GBP"
    assert body["elasticity_in_use"]["source"] == "default"
    assert "-0.4" in body["elasticity_in_use"]["assumption"]
    rule = RateRule.objects.get(car_park=car_park)
    assert rule.band_low == Decimal("0.600")
    assert rule.band_high == Decimal("0.805")
    assert AuditEntry.objects.filter(action="raterule.create", object_id=str(rule.pk)).count() == 1

    response = op.patch(url(car_park, "rate-rule"), {"is_dynamic": False}, format="json")
    assert response.status_code == 200
    assert response.json()["is_dynamic"] is False
    assert response.json()["band_low"] == 60.0


def test_get_without_a_rule_shows_the_defaults(op: APIClient, car_park: CarPark) -> None:
    body = op.get(url(car_park, "rate-rule")).json()
    assert body["configured"] is False
    assert body["band_low"] == 70.0
    assert body["band_high"] == 85.0


@pytest.mark.parametrize(
    ("payload", "field", "code"),
    [
        ({**RULE, "minimum": "7.00"}, "minimum", "invalid"),
        ({**RULE, "band_low": 90, "band_high": 80}, "band_low", "invalid"),
        ({**RULE, "band_low": -5}, "band_low", "min_value"),
        ({**RULE, "band_high": 120}, "band_high", "max_value"),
        ({**RULE, "minimum": "-1.00"}, "minimum", "min_value"),
        ({**RULE, "base_rate": "cheap"}, "base_rate", "invalid"),
        ({**RULE, "step": "0"}, "step", "min_value"),
        ({**RULE, "elasticity": "0.3"}, "elasticity", "max_value"),
        ({"minimum": "1.00"}, "base_rate", "required"),
    ],
)
def test_bad_rule_input_is_a_400_with_field_errors(
    op: APIClient, car_park: CarPark, payload: dict[str, Any], field: str, code: str
) -> None:
    response = op.put(url(car_park, "rate-rule"), payload, format="json")
    assert fields_of(response).get(field) == code
    assert not RateRule.objects.exists()


def test_patch_is_checked_against_the_stored_rule(op: APIClient, car_park: CarPark) -> None:
    op.put(url(car_park, "rate-rule"), RULE, format="json")
    assert "minimum" in fields_of(op.patch(url(car_park, "rate-rule"), {"maximum": "0.50"}, format="json"))
    assert RateRule.objects.get().maximum == Decimal("6.00")


def test_override_by_local_date_and_hours(op: APIClient, car_park: CarPark) -> None:
    op.put(url(car_park, "rate-rule"), RULE, format="json")
    response = op.post(
        url(car_park, "rate-overrides"),
        {"date": "2026-06-05", "from_hour": 18, "to_hour": 22, "rate": "5.00", "reason": "Concert"},
        format="json",
    )
    assert response.status_code == 201, response.content
    override = RateOverride.objects.get()
    assert override.starts_at == datetime(2026, 6, 5, 17, tzinfo=UTC)  # 18:00 BST
    assert override.ends_at == datetime(2026, 6, 5, 21, tzinfo=UTC)
    assert response.json()["rate"] == "5.00"
    assert op.get(url(car_park, "rate-overrides")).json()["results"][0]["id"] == override.pk
    assert op.delete(url(car_park, f"rate-overrides/{override.pk}")).status_code == 204
    assert not RateOverride.objects.exists()
    assert list(AuditEntry.objects.filter(object_type="pricing.rateoverride").values_list("action", flat=True)) == [
        "rateoverride.delete",
        "rateoverride.create",
    ]


@pytest.mark.parametrize(
    ("payload", "field", "code"),
    [
        ({"starts_at": "2026-06-05T18:00:00", "ends_at": "2026-06-05T20:00:00Z", "rate": "3.00"}, "starts_at", "naive"),
        ({"starts_at": "2026-06-05T18:00:00Z", "ends_at": "2026-06-05T17:00:00Z", "rate": "3.00"}, "ends_at", None),
        ({"starts_at": "2026-06-05T18:00:00Z", "ends_at": "2026-06-05T20:00:00Z", "rate": "9.00"}, "rate", None),
        ({"starts_at": "2026-06-05T18:00:00Z", "ends_at": "2026-06-05T20:00:00Z", "rate": "-1"}, "rate", "min_value"),
        ({"starts_at": "2026-06-05T18:00:00Z", "ends_at": "2026-06-05T20:00:00Z", "rate": "abc"}, "rate", "invalid"),
        ({"starts_at": "2026-06-05T18:15:00Z", "ends_at": "2026-06-05T20:00:00Z", "rate": "3.00"}, "starts_at", None),
    ],
)
def test_bad_override_is_a_400_with_field_errors(
    op: APIClient, car_park: CarPark, payload: dict[str, Any], field: str, code: str | None
) -> None:
    op.put(url(car_park, "rate-rule"), RULE, format="json")
    errors = fields_of(op.post(url(car_park, "rate-overrides"), payload, format="json"))
    assert field in errors
    if code:
        assert errors[field] == code
    assert not RateOverride.objects.exists()


def test_another_companys_car_park_is_404_for_every_route(
    op: APIClient, other_car_park: CarPark, api: Callable[[User | None], APIClient], marketing: User
) -> None:
    RateRule.objects.create(car_park=other_car_park, base_rate=Decimal(2), minimum=Decimal(1), maximum=Decimal(5))
    override = RateOverride.objects.create(
        car_park=other_car_park, starts_at=NOW, ends_at=NOW + timedelta(hours=1), rate=Decimal(3)
    )
    assert op.put(url(other_car_park, "rate-rule"), RULE, format="json").status_code == 404
    body = {"starts_at": "2026-06-05T18:00:00Z", "ends_at": "2026-06-05T20:00:00Z", "rate": "3.00"}
    assert op.post(url(other_car_park, "rate-overrides"), body, format="json").status_code == 404
    assert op.delete(url(other_car_park, f"rate-overrides/{override.pk}")).status_code == 404
    for tail in ("rate-rule", "rate-overrides", "rates", "rates/explain", "rate-history", "forecast", "forecast.png"):
        assert op.get(url(other_car_park, tail)).status_code == 404, tail
        assert api(marketing).get(url(other_car_park, tail)).status_code == 404, tail
    assert RateOverride.objects.filter(pk=override.pk).exists()


def test_marketing_reads_but_never_changes_rates_and_drivers_are_refused(
    api: Callable[[User | None], APIClient], marketing: User, driver: User, car_park: CarPark
) -> None:
    team = api(marketing)
    assert team.get(url(car_park, "rate-rule")).status_code == 200
    assert team.get(url(car_park, "rates")).status_code == 200
    assert team.put(url(car_park, "rate-rule"), RULE, format="json").status_code == 403
    assert team.post(url(car_park, "rate-overrides"), {}, format="json").status_code == 403
    assert api(driver).get(url(car_park, "rate-rule")).status_code == 403
    assert api(None).get(url(car_park, "rates")).status_code == 401
    assert not RateRule.objects.exists()


def publish(car_park: CarPark, monkeypatch: pytest.MonkeyPatch, occupancy: float | None = 0.95) -> None:
    RateRule.objects.create(
        car_park=car_park,
        base_rate=Decimal("2.00"),
        minimum=Decimal("1.00"),
        maximum=Decimal("2.50"),
        step=Decimal("0.10"),
    )
    monkeypatch.setattr(
        rates, "_forecasts", lambda car_parks, hours: {c.pk: [occupancy] * len(hours) for c in car_parks}
    )
    rates.publish_rates(now=NOW)


def test_calendar_and_explain_show_the_reason(
    op: APIClient, car_park: CarPark, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish(car_park, monkeypatch)
    calendar = op.get(url(car_park, "rates"), {"start": "2026-06-02T00:00:00Z", "end": "2026-06-03T00:00:00Z"}).json()
    assert len(calendar["rates"]) == 24
    assert calendar["rates"][0]["rate"] == "2.50"
    assert calendar["rates"][0]["reason"]["bound_applied"] == "maximum"

    explained = op.get(url(car_park, "rates/explain"), {"at": "2026-06-02T08:20:00+01:00"}).json()
    assert explained["hour_start"] == "2026-06-02T07:00:00Z"
    assert explained["rate"] == "2.50"
    assert explained["bound_applied"] == "maximum"
    assert explained["predicted_occupancy"] == pytest.approx(0.95 * 1.25**-0.4, abs=1e-4)
    assert explained["target_band"] == {"low_percent": 70.0, "high_percent": 85.0}
    assert explained["elasticity"] == {"value": -0.4, "source": "default"}
    assert "-0.4" in explained["assumption"]
    assert "maximum" in explained["explanation"]


def test_explain_an_unpublished_hour_names_the_rate_card(op: APIClient, car_park: CarPark) -> None:
    body = op.get(url(car_park, "rates/explain"), {"at": "2026-06-02T08:00:00Z"}).json()
    assert body["source"] == "platform_default"
    assert body["policy"] == "not_published"


def test_window_parameters_are_validated(op: APIClient, car_park: CarPark) -> None:
    assert "start" in fields_of(op.get(url(car_park, "rates"), {"start": "2026-06-02T00:00:00"}))
    assert "end" in fields_of(
        op.get(url(car_park, "rates"), {"start": "2026-06-02T00:00:00Z", "end": "2026-06-01T00:00:00Z"})
    )
    assert "at" in fields_of(op.get(url(car_park, "rates/explain"), {"at": "yesterday"}))


def test_history_and_forecast_against_actual(
    api: Callable[[User | None], APIClient],
    operator: User,
    car_park: CarPark,
    monkeypatch: pytest.MonkeyPatch,
    time_machine: Any,
) -> None:
    publish(car_park, monkeypatch, occupancy=0.8)
    hour = datetime(2026, 6, 1, 12, tzinfo=UTC)
    OccupancyHour.objects.create(car_park=car_park, hour_start=hour, source="gate", occupied=Decimal(72), capacity=100)
    OccupancyHour.objects.create(
        car_park=car_park, hour_start=hour, source="bookings", occupied=Decimal(50), capacity=100
    )
    time_machine.move_to(NOW + timedelta(hours=6), tick=False)
    op = api(operator)  # a token issued at the new time
    forecast = op.get(url(car_park, "forecast"), {"start": "2026-06-01T12:00:00Z", "end": "2026-06-01T13:00:00Z"})
    assert forecast.status_code == 200, forecast.content
    [row] = forecast.json()["hours"]
    assert row["forecast_occupancy"] == 0.8
    assert row["actual_occupancy"] == 0.72  # the gate count beats bookings
    assert row["rate"] == "2.00"

    history = op.get(url(car_park, "rate-history"), {"start": "2026-06-01T00:00:00Z", "end": "2026-06-02T00:00:00Z"})
    body = history.json()
    assert [item["hour_start"] for item in body["rates"]][:2] == ["2026-06-01T10:00:00Z", "2026-06-01T11:00:00Z"]
    assert len(body["rates"]) == 6  # 10:00 .. 15:00 have started by 15:30


def _png_size(content: bytes) -> tuple[int, int]:
    assert content[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", content[16:24])  # IHDR width, height


def test_forecast_chart_is_a_png_operators_and_marketing_can_look_at(
    api: Callable[[User | None], APIClient],
    operator: User,
    marketing: User,
    driver: User,
    car_park: CarPark,
    monkeypatch: pytest.MonkeyPatch,
    time_machine: Any,
) -> None:
    publish(car_park, monkeypatch, occupancy=0.8)
    for hour in range(8, 14):
        OccupancyHour.objects.create(
            car_park=car_park,
            hour_start=datetime(2026, 6, 1, hour, tzinfo=UTC),
            source="gate",
            occupied=Decimal(60 + hour),
            capacity=100,
        )
    time_machine.move_to(NOW + timedelta(hours=6), tick=False)
    window = {"start": "2026-06-01T06:00:00Z", "end": "2026-06-03T06:00:00Z"}
    chart = api(operator).get(url(car_park, "forecast.png"), window)
    assert chart.status_code == 200
    assert chart["Content-Type"] == "image/png"
    assert _png_size(chart.content) == (1100, 550)
    assert api(marketing).get(url(car_park, "forecast.png"), window).status_code == 200
    empty = api(operator).get(url(car_park, "forecast.png"), {"start": "2026-05-01T00:00:00Z"})
    assert empty.status_code == 200
    assert empty.content != chart.content

    assert api(operator).get(url(car_park, "forecast.png"), window, HTTP_ACCEPT="image/png").status_code == 200
    assert api(driver).get(url(car_park, "forecast.png")).status_code == 403
    refused = api(operator).get(
        url(car_park, "forecast.png"), {"start": "2026-06-01T06:00:00"}, HTTP_ACCEPT="image/png"
    )
    assert refused.status_code == 400
    assert refused["Content-Type"] == "application/problem+json"
