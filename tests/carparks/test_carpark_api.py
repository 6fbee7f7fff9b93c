"""The car-park API: who may create, read, change and archive, and bad input refused cleanly."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from backend.audit.models import AuditEntry
from backend.carparks.models import CarPark
from backend.carparks.selectors import carpark_snapshot

URL = "/api/v1/carparks"

VALID: dict[str, Any] = {
    "name": "Snow Hill",
    "address": "Livery Street, Birmingham B3 1EU",
    "location": {"lat": 52.4837, "lng": -1.8993},
    "timezone": "Europe/London",
    "currency": "GBP",
    "total_capacity": 500,
    "bays": {"accessible": 20, "ev_charging": 10},
    "features": {"covered": True, "height_limit_m": "2.10"},
    "opening_hours": [
        {"weekday": "monday", "opens": "07:00", "closes": "22:00"},
        {"weekday": "friday", "opens": "07:00", "closes": "02:00", "overnight": True},
        {"weekday": "saturday", "opens": "00:00", "closes": "24:00"},
    ],
    "internal_notes": "Barrier 2 sticks in the cold.",
}


def with_changes(**changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(VALID)
    body.update(changes)
    return body


def test_operator_creates_car_park_with_bays_features_and_hours(api, operator):
    response = api(operator).post(URL, VALID, format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["total_capacity"] == 500
    assert body["bays"] == {"standard": 470, "accessible": 20, "ev_charging": 10}
    assert body["features"] == {"covered": True, "ev_charging": True, "accessible": True, "height_limit_m": "2.10"}
    assert body["location"] == {"lat": 52.4837, "lng": -1.8993}
    assert body["opening_hours"] == [
        {"weekday": "monday", "opens": "07:00", "closes": "22:00", "overnight": False},
        {"weekday": "friday", "opens": "07:00", "closes": "02:00", "overnight": True},
        {"weekday": "saturday", "opens": "00:00", "closes": "24:00", "overnight": False},
    ]
    assert body["internal_notes"] == "Barrier 2 sticks in the cold."
    car_park = CarPark.objects.get(pk=body["id"])
    assert car_park.company == operator.company
    assert AuditEntry.objects.filter(action="carpark.create", object_id=str(car_park.pk), actor=operator).count() == 1


def test_car_park_without_hours_is_open_around_the_clock(api, operator):
    body = with_changes()
    del body["opening_hours"]
    response = api(operator).post(URL, body, format="json")
    assert response.status_code == 201
    assert response.json()["opening_hours"] == [
        {"weekday": day, "opens": "00:00", "closes": "24:00", "overnight": False}
        for day in ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
    ]


@pytest.mark.parametrize("role", ["driver", "marketing"])
def test_non_operators_cannot_create_car_parks(api, request, role):
    user = request.getfixturevalue(role)
    response = api(user).post(URL, VALID, format="json")
    assert response.status_code == 403
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "permission_denied"
    assert CarPark.objects.count() == 0


def test_anonymous_cannot_create_car_parks(anon, db):
    response = anon.post(URL, VALID, format="json")
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
    assert CarPark.objects.count() == 0


def test_everyone_reads_public_fields_without_private_ones(anon, api, driver, car_park):
    for client in (anon, api(driver)):
        body = client.get(f"{URL}/{car_park.pk}").json()
        assert body["id"] == car_park.pk
        assert body["name"] == car_park.name
        assert "internal_notes" not in body
        assert "created_at" not in body


def test_own_operator_reads_private_fields(api, operator, car_park):
    body = api(operator).get(f"{URL}/{car_park.pk}").json()
    assert "internal_notes" in body
    assert "updated_at" in body


def test_other_company_operator_cannot_read_private_fields_change_or_delete(api, other_operator, car_park):
    client = api(other_operator)
    before = carpark_snapshot(car_park)

    read = client.get(f"{URL}/{car_park.pk}")
    assert read.status_code == 200
    assert "internal_notes" not in read.json()
    assert client.get(f"{URL}/{car_park.pk}/audit-log").status_code == 404

    patch = client.patch(f"{URL}/{car_park.pk}", {"name": "Hijacked", "total_capacity": 1}, format="json")
    put = client.put(f"{URL}/{car_park.pk}", VALID, format="json")
    delete = client.delete(f"{URL}/{car_park.pk}")
    closure = client.post(
        f"{URL}/{car_park.pk}/closures",
        {"starts_at": "2030-01-01T00:00:00Z", "ends_at": "2030-01-02T00:00:00Z", "reason": "no"},
        format="json",
    )

    for response in (patch, put, delete, closure):
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"
    car_park.refresh_from_db()
    assert carpark_snapshot(car_park) == before
    assert car_park.archived_at is None
    assert car_park.closures.count() == 0


def test_operator_changes_own_car_park_and_change_is_audited(api, operator, car_park):
    response = api(operator).patch(f"{URL}/{car_park.pk}", {"total_capacity": 120, "name": "Renamed"}, format="json")

    assert response.status_code == 200, response.json()
    assert response.json()["bays"] == {"standard": 110, "accessible": 5, "ev_charging": 5}
    entry = AuditEntry.objects.get(action="carpark.update", object_id=str(car_park.pk))
    assert entry.actor == operator
    assert entry.before["name"] != "Renamed"
    assert entry.after["name"] == "Renamed"
    assert entry.before["bays"]["standard"] == 90
    assert entry.after["bays"]["standard"] == 110


def test_operator_archives_own_car_park_and_it_leaves_the_catalogue(api, operator, anon, car_park):
    assert api(operator).delete(f"{URL}/{car_park.pk}").status_code == 204
    assert anon.get(f"{URL}/{car_park.pk}").status_code == 404
    assert anon.get(URL).json()["count"] == 0
    assert AuditEntry.objects.filter(action="carpark.archive").count() == 1


BAD_INPUT = [
    ("latitude 91", {"location": {"lat": 91, "lng": 0}}, "location.lat"),
    ("longitude -181", {"location": {"lat": 0, "lng": -181}}, "location.lng"),
    ("unknown time zone", {"timezone": "Mars/Olympus_Mons"}, "timezone"),
    ("time zone abbreviation", {"timezone": "BST"}, "timezone"),
    ("unknown currency", {"currency": "XYZ"}, "currency"),
    ("capacity zero", {"total_capacity": 0}, "total_capacity"),
    ("capacity negative", {"total_capacity": -5}, "total_capacity"),
    ("capacity not numeric", {"total_capacity": "lots"}, "total_capacity"),
    ("capacity fractional", {"total_capacity": 10.5}, "total_capacity"),
    ("bays exceed capacity", {"total_capacity": 10, "bays": {"accessible": 8, "ev_charging": 8}}, "bays"),
    ("negative bays", {"bays": {"accessible": -1}}, "bays.accessible"),
    (
        "close before open on a non-overnight day",
        {"opening_hours": [{"weekday": "monday", "opens": "22:00", "closes": "07:00"}]},
        "opening_hours.0.closes",
    ),
    (
        "close equals open on a non-overnight day",
        {"opening_hours": [{"weekday": "monday", "opens": "09:00", "closes": "09:00"}]},
        "opening_hours.0.closes",
    ),
    (
        "bad weekday",
        {"opening_hours": [{"weekday": "funday", "opens": "07:00", "closes": "09:00"}]},
        "opening_hours.0.weekday",
    ),
    (
        "bad clock time",
        {"opening_hours": [{"weekday": 0, "opens": "25:00", "closes": "09:00"}]},
        "opening_hours.0.opens",
    ),
    (
        "two periods on one weekday",
        {
            "opening_hours": [
                {"weekday": 0, "opens": "07:00", "closes": "09:00"},
                {"weekday": "monday", "opens": "10:00", "closes": "12:00"},
            ]
        },
        "opening_hours",
    ),
    ("height limit negative", {"features": {"height_limit_m": "-2"}}, "features.height_limit_m"),
    ("location missing lng", {"location": {"lat": 52}}, "location.lng"),
]


@pytest.mark.parametrize(("case", "changes", "field"), BAD_INPUT, ids=[case for case, _, _ in BAD_INPUT])
def test_bad_input_on_create_is_400_with_field_error_and_creates_nothing(api, operator, case, changes, field):
    response = api(operator).post(URL, with_changes(**changes), format="json")

    assert response.status_code == 400, (case, response.status_code)
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "validation_error"
    assert field in [error["field"] for error in body["errors"]], body["errors"]
    assert CarPark.objects.count() == 0
    assert AuditEntry.objects.count() == 0


@pytest.mark.parametrize(("case", "changes", "field"), BAD_INPUT, ids=[case for case, _, _ in BAD_INPUT])
def test_bad_input_on_change_is_400_and_changes_nothing(api, operator, car_park, case, changes, field):
    before = carpark_snapshot(car_park)
    response = api(operator).patch(f"{URL}/{car_park.pk}", changes, format="json")

    assert response.status_code == 400, (case, response.json())
    assert field in [error["field"] for error in response.json()["errors"]]
    car_park.refresh_from_db()
    assert carpark_snapshot(car_park) == before


def test_malformed_json_is_400_and_creates_nothing(api, operator):
    response = api(operator).post(URL, data='{"name": "Broken", ', content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "malformed_json"
    assert CarPark.objects.count() == 0


def test_missing_required_fields_are_listed(api, operator):
    response = api(operator).post(URL, {}, format="json")
    assert response.status_code == 400
    fields = {error["field"] for error in response.json()["errors"]}
    assert {"name", "address", "location", "timezone", "currency"} <= fields
