"""Closures: the operator adds and removes them; bad periods are refused and change nothing."""

from __future__ import annotations

import pytest

from backend.audit.models import AuditEntry
from backend.carparks.models import Closure


def url(car_park) -> str:
    return f"/api/v1/carparks/{car_park.pk}/closures"


def test_operator_adds_a_closure_and_everyone_can_list_it(api, operator, anon, car_park):
    response = api(operator).post(
        url(car_park),
        {"starts_at": "2030-05-01T08:00:00+01:00", "ends_at": "2030-05-01T18:00:00+01:00", "reason": "Resurfacing"},
        format="json",
    )
    assert response.status_code == 201, response.json()
    assert response.json()["starts_at"] == "2030-05-01T07:00:00Z"
    listed = anon.get(url(car_park)).json()
    assert [row["reason"] for row in listed["results"]] == ["Resurfacing"]
    assert AuditEntry.objects.filter(action="closure.create", actor=operator).count() == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"starts_at": "2030-05-02T08:00:00Z", "ends_at": "2030-05-01T08:00:00Z", "reason": "x"}, "ends_at"),
        ({"starts_at": "2030-05-01T08:00:00Z", "ends_at": "2030-05-01T08:00:00Z", "reason": "x"}, "ends_at"),
        ({"starts_at": "2030-05-01T08:00:00", "ends_at": "2030-05-01T18:00:00Z", "reason": "x"}, "starts_at"),
        ({"starts_at": "yesterday", "ends_at": "2030-05-01T18:00:00Z", "reason": "x"}, "starts_at"),
        ({"starts_at": "2030-05-01T08:00:00Z", "ends_at": "2030-05-01T18:00:00Z"}, "reason"),
    ],
)
def test_bad_closures_are_400_and_store_nothing(api, operator, car_park, body, field):
    response = api(operator).post(url(car_park), body, format="json")
    assert response.status_code == 400
    assert field in [error["field"] for error in response.json()["errors"]]
    assert Closure.objects.count() == 0


def test_drivers_cannot_add_closures(api, driver, car_park):
    body = {"starts_at": "2030-05-01T08:00:00Z", "ends_at": "2030-05-01T18:00:00Z", "reason": "x"}
    assert api(driver).post(url(car_park), body, format="json").status_code == 403
    assert Closure.objects.count() == 0


def test_operator_removes_own_closure_but_not_another_companys(api, operator, other_operator, car_park):
    closure = Closure.objects.create(
        car_park=car_park, starts_at="2030-05-01T08:00:00Z", ends_at="2030-05-01T18:00:00Z", reason="x"
    )
    assert api(other_operator).delete(f"{url(car_park)}/{closure.pk}").status_code == 404
    assert Closure.objects.filter(pk=closure.pk).exists()
    assert api(operator).delete(f"{url(car_park)}/{closure.pk}").status_code == 204
    assert not Closure.objects.filter(pk=closure.pk).exists()
    assert AuditEntry.objects.filter(action="closure.delete").count() == 1


def test_past_closures_are_listed_only_to_the_car_parks_company(api, operator, other_operator, anon, car_park):
    Closure.objects.create(car_park=car_park, starts_at="2020-05-01T08:00Z", ends_at="2020-05-01T18:00Z", reason="Old")
    Closure.objects.create(car_park=car_park, starts_at="2030-05-01T08:00Z", ends_at="2030-05-01T18:00Z", reason="New")

    def reasons(client) -> list[str]:
        return sorted(row["reason"] for row in client.get(url(car_park)).json()["results"])

    assert reasons(api(operator)) == ["New", "Old"]
    assert reasons(anon) == ["New"]
    assert reasons(api(other_operator)) == ["New"]
