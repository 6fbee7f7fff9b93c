"""A driver's vehicles: plates normalised, refused cleanly when odd, visible only to their owner."""

from __future__ import annotations

from typing import Any

import pytest

from backend.accounts.models import Vehicle
from tests.factories import VehicleFactory

URL = "/api/v1/me/vehicles"

pytestmark = pytest.mark.django_db


def detail_url(vehicle: Vehicle) -> str:
    return f"{URL}/{vehicle.pk}"


def assert_problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status
    assert body["code"] == code
    return body


def test_driver_adds_vehicle_with_normalised_plate(api, driver):
    response = api(driver).post(URL, {"plate": "ab12-cde"})

    assert response.status_code == 201, response.json()
    vehicle = Vehicle.objects.get()
    assert response.json() == {"id": vehicle.pk, "plate": "AB12CDE"}
    assert vehicle.owner == driver
    assert vehicle.plate == "AB12CDE"


@pytest.mark.parametrize("raw", ["AB12 CDE", "ab12cde", " ab12 - cde ", "A-B-1-2-C-D-E"])
def test_plate_spellings_normalise_to_the_same_plate(api, driver, raw):
    response = api(driver).post(URL, {"plate": raw})

    assert response.status_code == 201, response.json()
    assert response.json()["plate"] == "AB12CDE"
    assert list(Vehicle.objects.values_list("plate", flat=True)) == ["AB12CDE"]


@pytest.mark.parametrize("raw", ["AB12!CDE", "ÄB12", "AB_12", "AB.12", "A", "12345678901", "- -", ""])
def test_plate_with_illegal_characters_or_length_is_refused(api, driver, raw):
    response = api(driver).post(URL, {"plate": raw})

    body = assert_problem(response, 400, "validation_error")
    assert body["errors"][0]["field"] == "plate"
    assert Vehicle.objects.count() == 0


def test_plate_longer_than_serializer_limit_is_refused(api, driver):
    response = api(driver).post(URL, {"plate": "A" * 21})

    body = assert_problem(response, 400, "validation_error")
    assert [error["field"] for error in body["errors"]] == ["plate"]
    assert Vehicle.objects.count() == 0


def test_missing_plate_is_refused(api, driver):
    response = api(driver).post(URL, {})

    body = assert_problem(response, 400, "validation_error")
    assert body["errors"] == [{"field": "plate", "code": "required", "message": "This field is required."}]
    assert Vehicle.objects.count() == 0


def test_same_plate_twice_for_same_driver_is_refused(api, driver):
    VehicleFactory(owner=driver, plate="AB12CDE")

    response = api(driver).post(URL, {"plate": "ab12 cde"})

    body = assert_problem(response, 400, "validation_error")
    assert body["errors"][0]["field"] == "plate"
    assert body["errors"][0]["code"] == "unique"
    assert Vehicle.objects.count() == 1


def test_two_drivers_may_register_the_same_plate(api, driver, other_driver):
    VehicleFactory(owner=other_driver, plate="AB12CDE")

    response = api(driver).post(URL, {"plate": "AB12CDE"})

    assert response.status_code == 201
    assert Vehicle.objects.filter(plate="AB12CDE").count() == 2


def test_list_shows_only_own_vehicles(api, driver, other_driver):
    mine = [VehicleFactory(owner=driver, plate="AB12CDE"), VehicleFactory(owner=driver, plate="XY34ZZZ")]
    VehicleFactory(owner=other_driver, plate="OTHER1")

    response = api(driver).get(URL)

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 2
    assert body["results"] == [{"id": v.pk, "plate": v.plate} for v in mine]


def test_driver_reads_own_vehicle(api, driver):
    vehicle = VehicleFactory(owner=driver, plate="AB12CDE")

    response = api(driver).get(detail_url(vehicle))

    assert response.status_code == 200
    assert response.json() == {"id": vehicle.pk, "plate": "AB12CDE"}


def test_driver_deletes_own_vehicle(api, driver):
    vehicle = VehicleFactory(owner=driver, plate="AB12CDE")

    response = api(driver).delete(detail_url(vehicle))

    assert response.status_code == 204
    assert not Vehicle.objects.filter(pk=vehicle.pk).exists()


def test_another_drivers_vehicle_is_not_found(api, driver, other_driver):
    theirs = VehicleFactory(owner=other_driver, plate="AB12CDE")

    get = api(driver).get(detail_url(theirs))
    delete = api(driver).delete(detail_url(theirs))

    assert_problem(get, 404, "not_found")
    assert_problem(delete, 404, "not_found")
    theirs.refresh_from_db()
    assert theirs.owner == other_driver
    assert theirs.plate == "AB12CDE"


def test_plate_cannot_be_changed_by_put_or_patch(api, driver):
    vehicle = VehicleFactory(owner=driver, plate="AB12CDE")

    put = api(driver).put(detail_url(vehicle), {"plate": "ZZ99ZZZ"})
    patch = api(driver).patch(detail_url(vehicle), {"plate": "ZZ99ZZZ"})

    assert_problem(put, 405, "method_not_allowed")
    assert_problem(patch, 405, "method_not_allowed")
    vehicle.refresh_from_db()
    assert vehicle.plate == "AB12CDE"


@pytest.mark.parametrize("role", ["operator", "operator_staff", "marketing"])
def test_company_staff_cannot_use_vehicles(api, request, driver, role):
    user = request.getfixturevalue(role)
    vehicle = VehicleFactory(owner=driver, plate="AB12CDE")
    client = api(user)

    responses = [
        client.get(URL),
        client.post(URL, {"plate": "XY34ZZZ"}),
        client.get(detail_url(vehicle)),
        client.delete(detail_url(vehicle)),
    ]

    for response in responses:
        assert_problem(response, 403, "permission_denied")
    assert list(Vehicle.objects.values_list("plate", flat=True)) == ["AB12CDE"]
    assert user.vehicles.count() == 0


def test_anonymous_cannot_use_vehicles(anon, driver):
    vehicle = VehicleFactory(owner=driver, plate="AB12CDE")

    responses = [
        anon.get(URL),
        anon.post(URL, {"plate": "XY34ZZZ"}),
        anon.get(detail_url(vehicle)),
        anon.delete(detail_url(vehicle)),
    ]

    for response in responses:
        assert_problem(response, 401, "not_authenticated")
    assert list(Vehicle.objects.values_list("plate", flat=True)) == ["AB12CDE"]
